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

from .corpus import ApprovedAnswer, short_title_of
from .dense import Embedder
from .index import BuiltIndex, Passage
from .lexical import BM25Index, encode_passages
from .text import TextAnalyzer, normalise

CANDIDATES = 100


@dataclass(frozen=True)
class Weights:
    """Tunable parameters of fusion and confidence (``qa hit-test`` shows them)."""

    bm25: float = 0.45
    dense: float = 0.55
    approved_boost: float = 1.05
    approved_phrasing_first: float = 0.55
    named_tax_boost: float = 0.1  # added to articles of a law about the tax the question names
    # Logistic confidence, fitted by bench/calibrate.py on our own labelled questions
    # (bench/questions/language.jsonl and the out-of-scope part of routing.jsonl).
    confidence_bias: float = -4.14
    confidence_cosine: float = 3.7
    confidence_agreement: float = 0.94
    confidence_margin: float = 4.98
    confidence_known_words: float = 1.98


@dataclass
class Hit:
    kind: str  # "article" or "approved"
    key: str  # passage id or answer id
    score: float
    bm25: float = 0.0
    dense: float = 0.0
    matched_terms: list[str] = field(default_factory=list)
    phrasing_similarity: float = 0.0  # approved answers: closeness to the nearest curated phrasing


@dataclass
class Retrieval:
    hits: list[Hit]
    confidence: float
    query_terms: dict[str, float]
    features: dict[str, float]


class AnswerIndex:
    """Approved answers, indexed in memory so curators' changes apply without a rebuild."""

    def __init__(self, answers: list[ApprovedAnswer], analyzer: TextAnalyzer, bm25: BM25Index, embedder: Embedder):
        self.answers = answers
        self.phrasings: list[tuple[int, str]] = [
            (number, text) for number, a in enumerate(answers) for text in [a.question, *a.alternatives]
        ]
        terms = [analyzer.tokens(text) for _, text in self.phrasings]
        self.matrix = encode_passages(terms, bm25.vocabulary, bm25.idf, bm25.average_length).T.tocsr()
        texts = [text for _, text in self.phrasings]
        self.vectors = embedder.encode(texts) if texts else np.zeros((0, 1), dtype=np.float32)
        self.owner = np.array([number for number, _ in self.phrasings], dtype=np.int64)
        self.key_terms = [analyzer.key_terms(text) for text in texts]


class Retriever:
    def __init__(self, index: BuiltIndex, analyzer: TextAnalyzer, embedder: Embedder, weights: Weights | None = None):
        self.index = index
        self.analyzer = analyzer
        self.embedder = embedder
        self.weights = weights or Weights()
        self.answers: AnswerIndex | None = None
        self.subjects = {p.doc: law_subject(p.doc) for p in index.passages}
        self._subject_names = sorted(set(self.subjects.values()), key=len, reverse=True)

    def set_answers(self, answers: list[ApprovedAnswer]) -> None:
        self.answers = AnswerIndex(answers, self.analyzer, self.index.bm25, self.embedder)

    def search(self, question: str, as_of: str, top_k: int, channels: tuple[str, ...] = ("bm25", "dense")) -> Retrieval:
        expansions = self.analyzer.expansions(normalise(question))
        terms = self.analyzer.query_terms(question, expansions)
        expansion_text = " ".join(phrase for phrase, _ in expansions)
        query_vector = self.embedder.encode([f"{question} {expansion_text}".strip()])[0] if "dense" in channels else None

        candidates: dict[int, list[float]] = {}
        bm25 = self.index.bm25.rank(terms, CANDIDATES) if "bm25" in channels else None
        if bm25 is not None:
            for i, score in zip(bm25.ids, bm25.scores):
                candidates[int(i)] = [float(score), 0.0]
        if query_vector is not None:
            cosines, ids = self.index.dense.search(query_vector, CANDIDATES * 2)
            bm25_of_ids = bm25.score_of(ids) if bm25 is not None else np.zeros(len(ids))
            for cosine, i, bm25_score in zip(cosines, ids, bm25_of_ids):
                entry = candidates.setdefault(int(i), [0.0, 0.0])
                entry[1] = float(cosine)
                entry[0] = float(bm25_score)

        passages = self.index.passages
        live = {i: s for i, s in candidates.items() if passages[i].in_force(as_of)}
        hits = [Hit("article", passages[i].id, 0.0, s[0], s[1]) for i, s in live.items()]
        index_of = {passages[i].id: i for i in live}
        hits += self._answer_hits(question, terms, query_vector, as_of, channels)
        self._fuse(hits, channels)
        named = self.named_taxes(f"{normalise(question)} {expansion_text}")
        for hit in hits:
            if hit.kind == "article" and self.subjects[passages[index_of[hit.key]].doc] in named:
                hit.score += self.weights.named_tax_boost
        hits.sort(key=lambda h: -h.score)
        confidence, features = self._confidence(hits, question)
        hits = hits[:top_k]
        articles = [hit for hit in hits if hit.kind == "article"]
        for hit, matched in zip(articles, self.index.bm25.matched_terms_of(terms, [index_of[h.key] for h in articles])):
            hit.matched_terms = matched
        return Retrieval(hits, confidence, terms, features)

    def named_taxes(self, text: str) -> set[str]:
        """The taxes (law subjects) a text names, longest first: 土地增值税 is not also 增值税."""
        found = set()
        for name in self._subject_names:
            if name in text:
                found.add(name)
                text = text.replace(name, "□")
        return found

    def _answer_hits(self, question: str, terms, query_vector, as_of: str, channels) -> list[Hit]:
        if self.answers is None or not self.answers.phrasings:
            return []
        answers = self.answers
        per_phrasing_bm25 = np.zeros(len(answers.phrasings), dtype=np.float32)
        if "bm25" in channels:
            indices, weights = self.index.bm25.query_vector(terms)
            if len(indices):
                per_phrasing_bm25 = np.asarray(answers.matrix[indices].T @ weights).ravel()
        per_phrasing_dense = answers.vectors @ query_vector if query_vector is not None else np.zeros(len(answers.phrasings))
        question_terms = self.analyzer.key_terms(question)
        best: dict[int, list[float]] = {}
        for phrasing, owner in enumerate(answers.owner):
            entry = best.setdefault(int(owner), [0.0, 0.0, 0.0])
            entry[0] = max(entry[0], float(per_phrasing_bm25[phrasing]))
            entry[1] = max(entry[1], float(per_phrasing_dense[phrasing]))
            overlap = dice(question_terms, answers.key_terms[phrasing])
            entry[2] = max(entry[2], (overlap + max(float(per_phrasing_dense[phrasing]), 0.0)) / 2)
        hits = []
        for owner, (bm25, dense, similarity) in best.items():
            answer = answers.answers[owner]
            if (answer.effective_from or "") <= as_of and (answer.effective_to is None or as_of < answer.effective_to):
                if bm25 > 0 or dense > 0:
                    hits.append(Hit("approved", answer.id, 0.0, bm25, dense, phrasing_similarity=similarity))
        return hits

    def _fuse(self, hits: list[Hit], channels) -> None:
        if not hits:
            return
        top_bm25 = max(h.bm25 for h in hits) or 1.0
        top_dense = max(h.dense for h in hits) or 1.0
        w = self.weights
        use_bm25, use_dense = "bm25" in channels, "dense" in channels
        total = (w.bm25 if use_bm25 else 0) + (w.dense if use_dense else 0)
        for h in hits:
            score = (w.bm25 * h.bm25 / top_bm25 if use_bm25 else 0) + (w.dense * max(h.dense, 0) / top_dense if use_dense else 0)
            score /= total
            if h.kind == "approved":
                score *= w.approved_boost
                if h.phrasing_similarity >= w.approved_phrasing_first:
                    score += 1.0  # a curated phrasing of this very question: ahead of every article
            h.score = score

    def _confidence(self, hits: list[Hit], question: str) -> tuple[float, dict[str, float]]:
        """How likely the first hit is right: similarity, agreement of the channels, margin to
        the runner-up, and how much of the question's vocabulary the knowledge base knows."""
        if not hits:
            return 0.0, {"cosine": 0.0, "agreement": 0.0, "margin": 0.0, "known_words": 0.0}
        top = hits[0]
        by_dense = max(hits, key=lambda h: h.dense)
        by_bm25 = max(hits, key=lambda h: h.bm25)
        words = self.analyzer.words(question)
        known = sum(1 for word in words if word in self.index.bm25.vocabulary)
        features = {
            "cosine": max(top.dense, 0.0),
            "agreement": 1.0 if (by_dense.key == top.key and by_bm25.key == top.key) else 0.0,
            "margin": top.score - hits[1].score if len(hits) > 1 else top.score,
            "known_words": known / len(words) if words else 0.0,
        }
        w = self.weights
        logit = (
            w.confidence_bias
            + w.confidence_cosine * features["cosine"]
            + w.confidence_agreement * features["agreement"]
            + w.confidence_margin * features["margin"]
            + w.confidence_known_words * features["known_words"]
        )
        confidence = float(1 / (1 + np.exp(-logit)))
        if top.kind == "approved":
            # An approved answer is as trustworthy as the question is close to one of its
            # curated phrasings: the same question scores 1, a merely related one 0.
            features["phrasing_similarity"] = top.phrasing_similarity
            confidence = max(confidence, min(max((top.phrasing_similarity - 0.4) / 0.4, 0.0), 1.0))
        return confidence, features


SUBJECT_SUFFIX = re.compile(r"(实施条例|暂行条例|实施细则|暂行规定|实施办法|条例|办法|法)$")


def law_subject(doc: str) -> str:
    """What a law is about, from its short title: 个人所得税法实施条例 -> 个人所得税."""
    subject = short_title_of(doc)
    while SUBJECT_SUFFIX.search(subject):
        subject = SUBJECT_SUFFIX.sub("", subject)
    return subject


def dice(a: set, b: set) -> float:
    return 2 * len(a & b) / (len(a) + len(b)) if a or b else 0.0
