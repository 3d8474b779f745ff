"""Building an index a chunk of passages at a time, so a million fit in a few GiB.

Passages are read once, in index order, and written to the index as they come. Each chunk's
texts are tokenised (BM25 terms) and embedded, in this process or in forked worker processes
(one per core pays off from tens of thousands of passages). The posting lists and the FAISS
index are filled as chunks come back; then each part is written and freed before the next is
made. ``IndexWriter`` keeps all of it in a scratch folder until ``commit``: a failure, a killed
worker or Ctrl-C leaves the current index serving.
"""

from __future__ import annotations

import math
import os
import signal
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .corpus import short_title_of
from .dense import DenseIndex, Embedder, ivf_cells
from .errors import QAError
from .index import IndexWriter, Passage, passage_text
from .law_model import LawModel
from .lexical import PostingsBuilder
from .scope import ScopeModel

CHUNK = 20_000  # passages tokenised at a time: ~40 MiB of term ids and vectors in flight per chunk
PARALLEL_FROM = 50_000  # passages; below this, forking workers costs more than it saves
TRAINING_PER_CELL = 64  # vectors an IVF index learns each cell from (FAISS samples no more)


@dataclass
class BuildReport:
    """Where the build went, and where its time went (wall seconds per step; CPU seconds the
    tokenising and embedding took, summed over the workers)."""

    folder: Path
    passages: int
    workers: int
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=lambda: {"tokenise": 0.0, "embed": 0.0})


def default_workers(passages: int) -> int:
    """1 below PARALLEL_FROM passages, else one per available core (at most one per chunk)."""
    if passages < PARALLEL_FROM:
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), math.ceil(passages / CHUNK)))


def build_index(
    home: Path,
    passages: Iterable[Passage],
    expected: int,
    analyzer,
    embedder: Embedder,
    dense_kind: str = "flat",
    workers: int = 1,
    progress=None,
    on_vectors: Callable[[np.ndarray], None] | None = None,
    chunk: int = CHUNK,
    scope_examples: tuple[list[str], list[str]] = ([], []),
) -> BuildReport:
    """Write a complete index of ``passages`` (in order) under ``home`` and switch to it.

    ``expected`` is about how many passages come (it sizes an IVF index and the progress bar).
    ``progress(items, label)`` wraps the loop over chunks (a progress bar advancing a chunk at
    a time); ``on_vectors(vectors)`` sees each chunk's vectors (the benchmark's exact search).
    ``scope_examples`` are questions in scope besides the passages' own (approved answers'
    phrasings) and questions out of scope: with both kinds, the scope model is trained.
    """
    report = BuildReport(Path(), 0, workers)
    chunks = math.ceil(expected / chunk) if expected else 0
    label = f"indexing {expected:,} passages" + (f" in {workers} processes" if workers > 1 else "")
    with IndexWriter(home) as writer, _Tokeniser(analyzer, embedder, workers) as tokeniser:
        start = time.perf_counter()
        postings, dense = PostingsBuilder(), _DenseFiller(dense_kind, embedder.dimension, expected)
        questions: list[str] = []
        question_laws: list[str] = []  # the law of each question's article

        def texts() -> Iterator[tuple[list[str], list[str]]]:
            for passages_chunk in _chunks(passages, chunk):
                writer.add_passages(passages_chunk)
                questions.extend(q for p in passages_chunk for q in p.questions)
                question_laws.extend(short_title_of(p.doc) for p in passages_chunk for _ in p.questions)
                yield [passage_text(p) for p in passages_chunk], [p.text for p in passages_chunk]

        answer_types = []
        for vocabulary, term_ids, lengths, vectors, types, cpu in _progress(_Sized(tokeniser.map(texts()), chunks), progress, label):
            postings.add(vocabulary, term_ids, lengths)
            if on_vectors is not None:
                on_vectors(vectors)
            dense.add(vectors)
            answer_types.append(types)
            for step, seconds in cpu.items():
                report.cpu_seconds[step] += seconds
        writer.write_answer_types(np.concatenate(answer_types or [np.zeros(0, dtype=np.int64)]), answer_type_names(analyzer))
        report.seconds["tokenise_embed"] = time.perf_counter() - start

        start = time.perf_counter()
        writer.write_dense(dense.finish())
        del dense
        if questions:
            writer.write_question_index(DenseIndex.graph_of(embedder.encode(questions)))
        in_scope, out_of_scope = questions + scope_examples[0], scope_examples[1]
        if in_scope and out_of_scope:
            writer.write_scope(ScopeModel.train(in_scope, out_of_scope))
        laws = LawModel.train(questions, question_laws)
        if laws is not None:
            writer.write_laws(laws)
        release_freed_memory()  # FAISS frees its vectors to the C heap, not to the system
        report.seconds["dense_write"] = time.perf_counter() - start
        start = time.perf_counter()
        bm25 = postings.finish()
        del postings
        writer.write_bm25(bm25)
        report.seconds["bm25"] = time.perf_counter() - start
        start = time.perf_counter()
        writer.write_homophones(analyzer.homophone_table(set(bm25.vocabulary)))
        report.passages = bm25.passages
        del bm25
        report.folder = writer.commit(embedder, analyzer.dictionary.fingerprint())
        report.seconds["homophones_commit"] = time.perf_counter() - start
    return report


def answer_type_names(analyzer) -> list[str]:
    """The kinds of question (deadline, amount...) in the order of their bits in an index."""
    return [name for name, _, _ in analyzer.dictionary.question_types]


def tokenise(chunk: tuple[list[str], list[str]], analyzer, embedder: Embedder):
    """For a chunk of passages (the texts indexed, and the articles' own words): BM25 terms
    (ids into the chunk's own vocabulary, one text after another, and each text's count), the
    vectors, the kinds of question each article answers (bits, in ``answer_type_names``
    order), and the CPU seconds each took."""
    texts, articles = chunk
    start = time.process_time()
    vocabulary: dict[str, int] = {}
    term_ids = array("i")
    lengths = np.empty(len(texts), dtype=np.int64)
    for number, text in enumerate(texts):
        terms = analyzer.tokens(text)
        term_ids.extend([vocabulary.setdefault(term, len(vocabulary)) for term in terms])
        lengths[number] = len(terms)
    bit = {name: 1 << number for number, name in enumerate(answer_type_names(analyzer))}
    types = np.array([sum(bit[name] for name in analyzer.answer_types(text)) for text in articles], dtype=np.int64)
    tokenised = time.process_time()
    vectors = embedder.encode(texts)
    cpu = {"tokenise": tokenised - start, "embed": time.process_time() - tokenised}
    return list(vocabulary), np.frombuffer(term_ids, dtype=np.int32), lengths, vectors, types, cpu


class _Tokeniser:
    """``map`` tokenises chunks in order: here, or in ``workers`` forked processes with a few
    chunks in flight (the forked workers share the analyzer and the embedder's tables)."""

    def __init__(self, analyzer, embedder: Embedder, workers: int):
        self.analyzer, self.embedder, self.workers = analyzer, embedder, workers
        self._executor = None
        self._saved_parallelism = None

    def __enter__(self) -> "_Tokeniser":
        if self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # The workers are the parallelism: the tokenizers library must not also start its
            # thread pool in each (it warns, after a fork, and would oversubscribe the cores).
            self._saved_parallelism = os.environ.get("TOKENIZERS_PARALLELISM")
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("fork"),
                initializer=_start_worker, initargs=(self.analyzer, self.embedder, os.getpid()),
            )
        return self

    def map(self, chunks: Iterable[tuple[list[str], list[str]]]) -> Iterator[tuple]:
        if self._executor is None:
            for texts in chunks:
                yield tokenise(texts, self.analyzer, self.embedder)
            return
        from concurrent.futures.process import BrokenProcessPool

        pending: deque = deque()
        try:
            for texts in chunks:
                pending.append(self._executor.submit(_tokenise_in_worker, texts))
                if len(pending) >= 2 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise QAError(
                "a build worker process died (killed, or out of memory?); the previous index is still "
                'in place. Run "qa build" again, with fewer --workers if memory is short'
            ) from None

    def __exit__(self, exc_type, *exc_info) -> None:
        if self._executor is None:
            return
        if exc_type is not None:
            # Failed or interrupted: stop the workers now rather than let them finish their chunks.
            # (ProcessPoolExecutor has no public way to; its processes are in ``_processes``.)
            processes = list((self._executor._processes or {}).values())
            self._executor.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            for process in processes:
                process.join()
        else:
            self._executor.shutdown(wait=True)
        if self._saved_parallelism is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = self._saved_parallelism


_worker: dict = {}  # in a worker process: the analyzer and the embedder it inherited


def _start_worker(analyzer, embedder, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    _end_with_parent(parent)
    _worker.update(analyzer=analyzer, embedder=embedder)


def _end_with_parent(parent: int) -> None:
    """Ask Linux to end this worker when the build process dies (killed, SIGTERM): without it an
    orphaned worker would finish its chunk (tens of seconds of both cores) for nobody."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux with glibc: the orphan finishes its chunk and exits
        pass
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


def _tokenise_in_worker(chunk: tuple[list[str], list[str]]):
    return tokenise(chunk, _worker["analyzer"], _worker["embedder"])


class _DenseFiller:
    """A FAISS index filled a chunk of vectors at a time. An IVF index first learns its cells
    from the first TRAINING_PER_CELL vectors per cell (whatever the chunk size, so a build is
    the same with any number of workers); the vectors wait until then."""

    def __init__(self, kind: str, dimension: int, expected: int):
        self.kind, self.dimension, self.expected = kind, dimension, expected
        self.training = TRAINING_PER_CELL * ivf_cells(expected) if kind == "ivf" else 0
        self.index: DenseIndex | None = None
        self.waiting: list[np.ndarray] = []
        self.waiting_rows = 0

    def add(self, vectors: np.ndarray) -> None:
        if self.index is None:
            self.waiting.append(vectors)
            self.waiting_rows += len(vectors)
            if self.waiting_rows >= self.training:
                self._create()
        else:
            self.index.add(vectors)

    def finish(self) -> DenseIndex:
        if self.index is None:
            self._create()
        return self.index

    def _create(self) -> None:
        waiting = np.concatenate(self.waiting) if self.waiting else np.zeros((0, self.dimension), dtype=np.float32)
        self.index = DenseIndex.create(self.kind, self.dimension, self.expected, waiting[: self.training])
        self.index.add(waiting)
        self.waiting, self.waiting_rows = [], 0


def release_freed_memory() -> None:
    """Hand memory freed inside the C heap back to the system (glibc), so the next step's peak
    does not sit on top of it."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class _Sized:
    """An iterator with a length, so a progress bar knows its total."""

    def __init__(self, items: Iterator, length: int):
        self.items, self.length = items, length

    def __iter__(self) -> Iterator:
        return self.items

    def __len__(self) -> int:
        return self.length


def _progress(items, progress, label: str):
    return progress(items, label) if progress else items
