"""Hybrid retrieval: BM25 and dense candidates, fused, filtered by validity, with a confidence.

Scores from the two channels live on different scales, so each is mapped to [0, 1] before
fusion: BM25 relative to the best passage for this question, cosine relative to the best
cosine. Confidence is a separate, absolute judgement: how much of the question the best
passage covers, how similar it is, whether both channels agree, and the margin to the next.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from .corpus import ApprovedAnswer, short_title_of
from .dense import Embedder
from .index import BuiltIndex
from .lexical import BM25Index, encode_passages, weighted_row_sum
from .scope import gram_buckets
from .text import Query, TextAnalyzer

CANDIDATES = 100
# What the confidence model weighs (``Weights.confidence_<name>``; bench/calibrate.py fits them)
CONFIDENCE_FEATURES = ("cosine", "agreement", "margin", "known_words", "question_cosine", "bm25")
QUESTION_CANDIDATES = 200  # curated questions closest to a question, searched in their graph index
OPEN_END = "10000-01-01"  # the end day of a passage still in force: after every date YYYY-MM-DD


@dataclass(frozen=True)
class Weights:
    """Tunable parameters of fusion and confidence (``qa hit-test`` shows them)."""

    bm25: float = 0.45
    dense: float = 0.55
    approved_boost: float = 1.05
    # An approved answer goes ahead of every article when a curated phrasing of it is this close.
    # At 0.55 a merely related answer came first for 125 of our 390 questions (61 of them wrong);
    # 0.75 puts its answer or a cited article first for 100 of 124 held-out phrasings (0.55: 95).
    approved_phrasing_first: float = 0.75
    named_tax_boost: float = 0.1  # added to articles of a law about the tax the question names
    law_prior: float = 0.3  # times the law model's probability of an article's law (qa_engine/law_model.py)
    # Taken from articles without the kind of answer the question asks for (a deadline, a
    # rate...); chosen on our own labelled questions (bench/questions, approved answers).
    answer_type_mismatch: float = 0.2
    # Logistic confidence that the first article is right for a question in scope, fitted by
    # bench/calibrate.py on our own answerable questions (bench/questions).
    confidence_bias: float = -4.58
    confidence_cosine: float = 3.35
    confidence_agreement: float = -0.58
    confidence_margin: float = 13.39
    confidence_known_words: float = -1.09
    confidence_question_cosine: float = 3.19  # the first article's closest curated question (cosine)
    confidence_bm25: float = 0.028  # the first hit's BM25 score


@dataclass
class Hit:
    kind: str  # "article" or "approved"
    key: str  # passage id or answer id
    score: float
    bm25: float = 0.0
    dense: float = 0.0
    passage: int = -1  # articles: the passage's number in the index
    phrasing_similarity: float = 0.0  # closeness to the nearest curated phrasing (an answer's, or an article's question: cosine)


@dataclass
class AnswerScores:
    """Approved answers a question finds: their numbers in ``AnswerIndex.answers``, scores, and the
    kinds of question they answer (``AnswerIndex.kinds``)."""

    numbers: np.ndarray
    bm25: np.ndarray
    dense: np.ndarray
    similarity: np.ndarray
    kinds: np.ndarray

    @classmethod
    def none(cls) -> "AnswerScores":
        return cls(*(np.zeros(0, dtype=dtype) for dtype in (np.int64, np.float64, np.float64, np.float64, np.int64)))


@dataclass
class Retrieval:
    hits: list[Hit]
    confidence: float
    query_terms: dict[str, float]
    features: dict[str, float]
    question_types: set[str] = field(default_factory=set)
    understood_as: str = ""  # the question normalised, with misheard tax terms put right
    heard: list[str] = field(default_factory=list)  # the question's words as heard (jieba's segmentation)
    law_probability: np.ndarray | None = None  # the law model's probability of each law (None: no law model)


@dataclass
class Phrasing:
    """What one phrasing of an approved answer brings to the answer index: its BM25 weights (against
    the built index's statistics), key terms and vector. Kept while the retriever lives, so a
    curator's change works out only the phrasings it adds."""

    terms: np.ndarray
    weights: np.ndarray
    key_terms: set[str]
    asks: set[str]  # the kinds of answer it asks for (TextAnalyzer.question_types)
    vector: np.ndarray


class AnswerIndex:
    """Approved answers, indexed in memory so curators' changes apply without a rebuild.

    ``earlier`` is the same retriever's index of the answers before a change: what it worked out
    of each phrasing (``known``) and each answer's text (``text_kinds``) is not worked out again."""

    def __init__(self, answers: list[ApprovedAnswer], analyzer: TextAnalyzer, bm25: BM25Index, embedder: Embedder,
                 kind_bits: dict[str, int], earlier: "AnswerIndex | None" = None):
        self.answers = answers
        self.by_id = {a.id: a for a in answers}
        self.phrasings: list[tuple[int, str]] = [
            (number, text) for number, a in enumerate(answers) for text in [a.question, *a.alternatives]
        ]
        texts = [text for _, text in self.phrasings]
        self.known = self._phrasings_of(texts, analyzer, bm25, embedder, earlier.known if earlier else {})
        worked_out = [self.known[text] for text in texts]
        lengths = [len(p.terms) for p in worked_out]
        matrix = sparse.csr_matrix(
            (np.concatenate([p.weights for p in worked_out] or [np.zeros(0, dtype=np.float32)]),
             np.concatenate([p.terms for p in worked_out] or [np.zeros(0, dtype=np.int32)]),
             np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])),
            shape=(len(texts), len(bm25.vocabulary)))
        self.matrix = matrix.T.tocsr()
        self.vectors = np.stack([p.vector for p in worked_out]) if texts else np.zeros((0, 1), dtype=np.float32)
        self.owner = np.array([number for number, _ in self.phrasings], dtype=np.int64)
        self.key_terms = [p.key_terms for p in worked_out]
        phrasings_with_term: dict[str, list[int]] = {}
        for phrasing, terms_of_phrasing in enumerate(self.key_terms):
            for term in terms_of_phrasing:
                phrasings_with_term.setdefault(term, []).append(phrasing)
        self._phrasings_with_term = {term: np.array(numbers, dtype=np.int64) for term, numbers in phrasings_with_term.items()}
        self._key_term_counts = np.array([len(t) for t in self.key_terms], dtype=np.float32)
        self._asks = np.array([bits_of(p.asks, kind_bits) for p in worked_out], dtype=np.int64)
        # the kinds of question each answer answers: those its text shows, as an article's
        # (TextAnalyzer.answer_types), and those its phrasings ask for (滞纳金怎么计算: how to compute)
        text_kinds = earlier.text_kinds if earlier else {}
        self.text_kinds = {text: text_kinds[text] if text in text_kinds else bits_of(analyzer.answer_types(text), kind_bits)
                           for text in dict.fromkeys(a.answer for a in answers)}
        self.kinds = np.array([self.text_kinds[a.answer] for a in answers], dtype=np.int64)
        np.bitwise_or.at(self.kinds, self.owner, self._asks)

    @staticmethod
    def _phrasings_of(texts: list[str], analyzer: TextAnalyzer, bm25: BM25Index, embedder: Embedder,
                      known: dict[str, Phrasing]) -> dict[str, Phrasing]:
        new = [text for text in dict.fromkeys(texts) if text not in known]
        if new:
            analysed = [analyzer.tokens_and_key_terms(text) for text in new]
            rows = encode_passages([tokens for tokens, _ in analysed], bm25.vocabulary, bm25.idf, bm25.average_length)
            vectors = embedder.encode(new)
            known = {**known, **{text: Phrasing(rows.indices[rows.indptr[n]:rows.indptr[n + 1]], rows.data[rows.indptr[n]:rows.indptr[n + 1]],
                                                key_terms, analyzer.question_types(text), vectors[n])
                                 for n, (text, (_, key_terms)) in enumerate(zip(new, analysed))}}
        return {text: known[text] for text in texts}

    def key_term_overlap(self, question_terms: set[str], asked_bits: int) -> np.ndarray:
        """Dice overlap of the question's key terms with each phrasing's. Where both ask for a kind
        of answer and no kind is shared (契税什么时候交 for 交了契税能退吗), each side counts one term
        more that the other lacks."""
        shared = np.zeros(len(self.phrasings), dtype=np.float32)
        for term in question_terms:
            if term in self._phrasings_with_term:
                shared[self._phrasings_with_term[term]] += 1
        sizes = self._key_term_counts + len(question_terms)
        if asked_bits:
            sizes = sizes + 2 * ((self._asks != 0) & (self._asks & asked_bits == 0))
        return np.divide(2 * shared, sizes, out=np.zeros_like(shared), where=sizes > 0)


class Retriever:
    def __init__(self, index: BuiltIndex, analyzer: TextAnalyzer, embedder: Embedder, weights: Weights | None = None):
        self.index = index
        self.analyzer = analyzer
        self.embedder = embedder
        self.weights = weights or Weights()
        self.answers: AnswerIndex | None = None
        self.subjects = {doc: law_subject(doc) for doc in sorted({p.doc for p in index.passages})}
        self._subject_names = sorted(set(self.subjects.values()), key=len, reverse=True)
        self._subject_id = {subject: number for number, subject in enumerate(sorted(set(self.subjects.values())))}
        self._subject_ids = np.array([self._subject_id[self.subjects[p.doc]] for p in index.passages], dtype=np.int64)
        # the days each passage is in force, [first_day, end_day): checked for all candidates at once
        self.first_day = np.array([p.effective_from or "0001-01-01" for p in index.passages], dtype="datetime64[D]")
        self.end_day = np.array([p.effective_to or OPEN_END for p in index.passages], dtype="datetime64[D]")
        # passages by id, and every version of each (law, article): what approved answers cite
        self.passage_number = {p.id: number for number, p in enumerate(index.passages)}
        self._versions: dict[tuple[str, str], list[int]] = {}
        for number, p in enumerate(index.passages):
            self._versions.setdefault((short_title_of(p.doc), p.article), []).append(number)
        # the kinds of question each passage answers, as bits in the order the index lists them
        self._type_bit = {name: 1 << number for number, name in enumerate(index.manifest["answer_types"])}
        self._answer_type_bits = index.answer_types
        # the passage each curated question belongs to, in the order of the question index
        counts = np.array([len(p.questions) for p in index.passages], dtype=np.int64)
        self._question_passage = np.repeat(np.arange(len(index.passages), dtype=np.int64), counts)
        # each passage's law as the law model numbers them (the last number: a law it does not know)
        if index.laws is not None:
            number_of = {law: number for number, law in enumerate(index.laws.laws)}
            self._passage_law = np.array([number_of.get(short_title_of(p.doc), len(number_of)) for p in index.passages], dtype=np.int64)

    def set_answers(self, answers: list[ApprovedAnswer]) -> None:
        self.answers = AnswerIndex(answers, self.analyzer, self.index.bm25, self.embedder, self._type_bit, self.answers)
        self._answer_first_day, self._answer_end_day = self._answer_days(answers)

    def cited(self, citation) -> list[int]:
        """The passages a citation names: the very version it names (doc with its date), else every
        version of the article."""
        number = self.passage_number.get(f"{citation.doc}#{citation.article}")
        return [number] if number is not None else self._versions.get((citation.doc, citation.article), [])

    def _answer_days(self, answers: list[ApprovedAnswer]) -> tuple[np.ndarray, np.ndarray]:
        """The days each approved answer applies, [first, end): its own dates, within the span of the
        articles it cites. An answer whose basis was not yet law, or is no longer, does not apply."""
        own_first = np.array([a.effective_from or "0001-01-01" for a in answers], dtype="datetime64[D]")
        own_end = np.array([a.effective_to or OPEN_END for a in answers], dtype="datetime64[D]")
        cited = [[number for c in a.citations for number in self.cited(c)] for a in answers]
        cited_first = np.array([self.first_day[numbers].min() if numbers else np.datetime64("0001-01-01") for numbers in cited],
                               dtype="datetime64[D]")
        cited_end = np.array([self.end_day[numbers].max() if numbers else np.datetime64(OPEN_END) for numbers in cited],
                             dtype="datetime64[D]")
        return np.maximum(own_first, cited_first), np.minimum(own_end, cited_end)

    def search(self, question: str, as_of: str, top_k: int, channels: tuple[str, ...] = ("bm25", "dense")) -> Retrieval:
        query = self.analyzer.analyse(question)
        expansion_text = " ".join(phrase for phrase, _ in query.expansions)
        query_vector = self.embedder.encode([f"{query.text} {expansion_text}".strip()])[0] if "dense" in channels else None

        ids, bm25, dense, question_cosine = self._candidates(query.terms, query_vector, channels)
        passages = self.index.passages
        day = np.datetime64(as_of, "D")
        in_force = (self.first_day[ids] <= day) & (day < self.end_day[ids])
        live, bm25, dense, question_cosine = ids[in_force], bm25[in_force], dense[in_force], question_cosine[in_force]
        articles = len(live)
        asked = self.analyzer.question_types(query.text)
        asked_bits = bits_of(asked, self._type_bit)
        answers = self._answer_scores(query, query_vector, asked_bits, as_of, channels)
        bm25 = np.concatenate([bm25, answers.bm25])
        dense = np.concatenate([dense, answers.dense])
        scores = self._fuse(bm25, dense, channels)
        scores[articles:] *= self.weights.approved_boost
        # a curated phrasing of this very question: ahead of every article
        scores[articles:] += answers.similarity >= self.weights.approved_phrasing_first
        grams = gram_buckets(query.text)
        law_probability = None
        if self.index.laws is not None:
            law_probability = self.index.laws.probabilities(grams)
            scores[:articles] += self.weights.law_prior * np.append(law_probability, 0.0)[self._passage_law[live]]
        named = self.named_taxes(f"{query.text} {expansion_text}")
        if named:
            scores[:articles] += self.weights.named_tax_boost * np.isin(self._subject_ids[live], [self._subject_id[n] for n in named])
        if asked_bits:  # articles and approved answers that hold no answer of the kind asked for
            kinds = np.concatenate([self._answer_type_bits[live], answers.kinds])
            scores -= self.weights.answer_type_mismatch * ((kinds & asked_bits) == 0)

        order = np.argsort(-scores, kind="stable")
        hits = []
        for number in order[:top_k].tolist():
            if number < articles:
                passage = int(live[number])
                hits.append(Hit("article", passages[passage].id, float(scores[number]), float(bm25[number]),
                                float(dense[number]), passage=passage, phrasing_similarity=float(question_cosine[number])))
            else:
                answer = number - articles
                hits.append(Hit("approved", self.answers.answers[answers.numbers[answer]].id, float(scores[number]),
                                float(bm25[number]), float(dense[number]), phrasing_similarity=float(answers.similarity[answer])))
        confidence, features = self._confidence(grams, hits, scores[order], bm25[order], dense[order], query.words)
        return Retrieval(hits, confidence, query.terms, features, asked, query.text, query.heard, law_probability)

    def matched_terms(self, retrieval: Retrieval) -> list[list[str]]:
        """For each hit, the query terms its article contains (none for approved answers)."""
        articles = [hit.passage for hit in retrieval.hits if hit.kind == "article"]
        matched = iter(self.index.bm25.matched_terms_of(retrieval.query_terms, articles))
        return [next(matched) if hit.kind == "article" else [] for hit in retrieval.hits]

    def _candidates(self, terms: dict[str, float], query_vector, channels) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Candidate passages, BM25's best and then the dense channel's best that BM25 did not
        bring (by the passage's vector or its closest curated question), with each channel's
        score of every candidate and its closest curated question's cosine."""
        lexical = self.index.bm25.rank(terms, CANDIDATES) if "bm25" in channels else None
        ids = lexical.ids if lexical is not None else np.zeros(0, dtype=np.int64)
        passage_cosine = question_cosine = np.zeros(len(ids))
        if query_vector is not None:
            cosines, found = self.index.dense.search(query_vector, CANDIDATES * 2)
            ids = np.concatenate([ids, found[place_in(found, ids) < 0]])
            closest, closest_cosines = np.zeros(0, dtype=np.int64), np.zeros(0)
            if self.index.questions is not None:
                question_cosines, questions = self.index.questions.search(query_vector, QUESTION_CANDIDATES)
                # best first: a passage's first question found is its closest
                closest, first = np.unique(self._question_passage[questions], return_index=True)
                closest_cosines = question_cosines[first]
                ids = np.concatenate([ids, closest[place_in(closest, ids) < 0]])
            passage_cosine = score_in(ids, found, cosines)
            question_cosine = score_in(ids, closest, closest_cosines)
        bm25 = lexical.score_of(ids).astype(np.float64) if lexical is not None else np.zeros(len(ids))
        return ids, bm25, np.maximum(passage_cosine, question_cosine), question_cosine

    def named_taxes(self, text: str) -> set[str]:
        """The taxes (law subjects) a text names, longest first: 土地增值税 is not also 增值税."""
        found = set()
        for name in self._subject_names:
            if name in text:
                found.add(name)
                text = text.replace(name, "□")
        return found

    def _answer_scores(self, query: Query, query_vector, asked_bits: int, as_of: str, channels) -> "AnswerScores":
        """The approved answers in force that either channel finds, each scored by its best phrasing."""
        answers = self.answers
        if answers is None or not answers.phrasings:
            return AnswerScores.none()
        per_phrasing_bm25 = np.zeros(len(answers.phrasings), dtype=np.float32)
        if "bm25" in channels:
            indices, weights = self.index.bm25.query_vector(query.terms)
            per_phrasing_bm25 = weighted_row_sum(answers.matrix, indices, weights)
        per_phrasing_dense = answers.vectors @ query_vector if query_vector is not None else np.zeros(len(answers.phrasings))
        overlap = answers.key_term_overlap(query.key_terms, asked_bits)
        similarity = (overlap + np.maximum(per_phrasing_dense, 0.0)) / 2
        # each answer's best phrasing (every answer has one at least: its question)
        bm25_best, dense_best, similarity_best = (largest_of_each(per_phrasing, answers.owner, len(answers.answers))
                                                  for per_phrasing in (per_phrasing_bm25, per_phrasing_dense, similarity))
        dense_best = np.maximum(dense_best, 0.0)
        day = np.datetime64(as_of, "D")
        applies = (self._answer_first_day <= day) & (day < self._answer_end_day)
        numbers = np.flatnonzero(((bm25_best > 0) | (dense_best > 0)) & applies)
        if len(numbers) > CANDIDATES:  # as for articles: each channel's best are the candidates
            chosen = [np.argpartition(-score[numbers], CANDIDATES)[:CANDIDATES] for score in (bm25_best, dense_best, similarity_best)]
            numbers = numbers[np.unique(np.concatenate(chosen))]
        return AnswerScores(numbers, *(score[numbers].astype(np.float64) for score in (bm25_best, dense_best, similarity_best)),
                            answers.kinds[numbers])

    def _fuse(self, bm25: np.ndarray, dense: np.ndarray, channels) -> np.ndarray:
        """Each channel's score relative to its best for this question, mixed by the weights."""
        if not len(bm25):
            return np.zeros(0)
        w = self.weights
        use_bm25, use_dense = "bm25" in channels, "dense" in channels
        total = (w.bm25 if use_bm25 else 0) + (w.dense if use_dense else 0)
        lexical = w.bm25 * bm25 / (bm25.max() or 1.0) if use_bm25 else 0.0
        semantic = w.dense * np.maximum(dense, 0.0) / (dense.max() or 1.0) if use_dense else 0.0
        return (lexical + semantic) / total

    def _confidence(self, question_grams: np.ndarray, hits: list[Hit], scores: np.ndarray, bm25: np.ndarray, dense: np.ndarray,
                    words: list[str]) -> tuple[float, dict[str, float]]:
        """How likely the first hit is right: similarity, agreement of the channels, margin to
        the runner-up, how much of the question's vocabulary the knowledge base knows, and the
        first hit's BM25 score, times how likely the question is one the knowledge base answers at all.
        ``scores``, ``bm25`` and ``dense`` cover every candidate, best first."""
        in_scope = self.index.scope.in_scope(question_grams) if self.index.scope is not None else 1.0
        if not hits:
            return 0.0, {**dict.fromkeys(CONFIDENCE_FEATURES, 0.0), "in_scope": in_scope}
        top = hits[0]
        known = sum(1 for word in words if word in self.index.bm25.vocabulary)
        features = {
            "cosine": max(top.dense, 0.0),
            "agreement": 1.0 if (dense.argmax() == 0 and bm25.argmax() == 0) else 0.0,
            "margin": top.score - float(scores[1]) if len(scores) > 1 else top.score,
            "known_words": known / len(words) if words else 0.0,
            # the closest curated question of an article, or phrasing of an approved answer
            "question_cosine": top.phrasing_similarity if top.kind == "article" else max(top.dense, 0.0),
            "bm25": top.bm25,
            "in_scope": in_scope,
        }
        logit = self.weights.confidence_bias + sum(getattr(self.weights, f"confidence_{name}") * features[name]
                                                   for name in CONFIDENCE_FEATURES)
        confidence = float(1 / (1 + np.exp(-logit))) * in_scope
        if top.kind == "approved":
            # An approved answer is as trustworthy as the question is close to one of its
            # curated phrasings: the same question scores 1, a merely related one 0. The scope
            # model does not overrule curators: they may answer what the laws do not.
            features["phrasing_similarity"] = top.phrasing_similarity
            confidence = max(confidence, min(max((top.phrasing_similarity - 0.4) / 0.4, 0.0), 1.0))
        return confidence, features


def place_in(values: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Where each of ``values`` is in ``others`` (distinct numbers), -1 where it is not (``np.isin``
    costs 5x more on a few hundred)."""
    if not len(others):
        return np.full(len(values), -1, dtype=np.int64)
    order = np.argsort(others)
    at = order[np.minimum(np.searchsorted(others, values, sorter=order), len(others) - 1)]
    return np.where(others[at] == values, at, -1)


def bits_of(kinds: set[str], kind_bits: dict[str, int]) -> int:
    """Kinds of question (a deadline, a refund...) as bits, numbered as the index numbers them;
    a kind the index does not know counts for nothing."""
    return sum(kind_bits.get(kind, 0) for kind in kinds)


def largest_of_each(values: np.ndarray, owners: np.ndarray, count: int) -> np.ndarray:
    """The largest of ``values`` for each owner 0 to ``count`` - 1 (-inf for one without values).
    ``np.maximum.at`` takes a third of ``np.maximum.reduceat``'s time at thousands of owners."""
    largest = np.full(count, -np.inf, dtype=values.dtype)
    np.maximum.at(largest, owners, values)
    return largest


def score_in(ids: np.ndarray, found: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each of ``ids``'s score among the distinct ``found`` (0 for those not found), as float64."""
    at = place_in(ids, found)
    result = np.zeros(len(ids))
    result[at >= 0] = scores[at[at >= 0]]
    return result


SUBJECT_SUFFIX = re.compile(r"(实施条例|暂行条例|实施细则|暂行规定|实施办法|条例|办法|法)$")


def law_subject(doc: str) -> str:
    """What a law is about, from its short title: 个人所得税法实施条例 -> 个人所得税."""
    subject = short_title_of(doc)
    while SUBJECT_SUFFIX.search(subject):
        subject = SUBJECT_SUFFIX.sub("", subject)
    return subject

