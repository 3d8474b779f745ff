"""Scale measurements, each step in its own process so peak memory is that step's alone.

    python -m bench.scale build    --size 100000 --work bench/results/scale --source $QA_HOME
    python -m bench.scale serve    --size 100000 --work bench/results/scale
    python -m bench.scale baseline --size 100000 --work bench/results/scale --source $QA_HOME

Each prints one JSON object. ``bench/run.py`` drives them; run them by hand to profile one.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import multiprocessing
import os
import pickle
import pstats
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import load_questions, percentiles, timed_asks  # noqa: E402
from qa_engine.dense import DenseIndex  # noqa: E402

RECALL_K = 10
PROBES = (4, 8, 16, 32, 64)
EF_SEARCH = (16, 32, 64, 128, 256)
TIE_SLACK = 1e-5  # float32 inner products of equal vectors may differ in the last bits


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def size_folder(work: Path, size: int) -> Path:
    return work / f"n{size}"


def source_service(source: Path):
    from qa_engine.config import Settings
    from qa_engine.service import QAService

    return QAService(Settings.from_env(home=source))


def load_pieces(work: Path, source: Path):
    """The real corpus cut into tokenised units, cached beside the runs (it takes a few seconds)."""
    from bench.synthetic import cut_pieces
    from qa_engine.index import load_index

    cache = work / "pieces.pickle"
    build_id = (source / "CURRENT").read_text("utf-8").strip()
    if cache.exists():
        cached = pickle.loads(cache.read_bytes())
        if cached["build_id"] == build_id:
            return cached["pieces"], cached["model"]
    service = source_service(source)
    index = load_index(source)
    embedder = service._embedder_for(index)
    pieces = cut_pieces(index.passages, service.analyzer(), embedder)
    work.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps({"build_id": build_id, "pieces": pieces, "model": embedder.name}))
    return pieces, embedder.name


def build(size: int, work: Path, source: Path, dense_kind: str, workers: int = 2) -> dict:
    """Build the engine's index over ``size`` synthetic passages in ``<work>/n<size>/home``, as a
    large build would: the passages' text tokenised (BM25 terms and embedding) in ``workers``
    processes a chunk at a time, posting lists and vectors collected as the chunks arrive,
    each part written and freed before the next is made."""
    from bench.synthetic import synthesise
    from qa_engine.index import IndexWriter
    from qa_engine.lexical import PostingsBuilder
    from qa_engine.static_embedder import StaticEmbedder
    from qa_engine.text import Dictionary, TextAnalyzer

    pieces, model = load_pieces(work, source)
    embedder = StaticEmbedder(model)
    start = time.perf_counter()
    corpus = synthesise(pieces, size)
    synthesise_s = time.perf_counter() - start
    settings = source_service(source).settings
    analyzer = TextAnalyzer(Dictionary.load(settings.corpus_dir / "dictionary"))
    queries = embedder.encode([q["question"] for q in load_questions()])
    folder = size_folder(work, size)
    home = folder / "home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)

    _job.update(corpus=corpus, analyzer=analyzer, embedder=embedder)
    spans = [(first, min(first + CHUNK, size)) for first in range(0, size, CHUNK)]
    timings: dict[str, float] = {}
    worker_seconds = {"tokenise": 0.0, "embed": 0.0}
    context = multiprocessing.get_context("fork")  # the workers inherit the corpus and the analyzer
    pool = context.Pool(workers)
    with MemorySampler(pool) as memory:
        start = time.perf_counter()
        with IndexWriter(home) as writer:
            t = time.perf_counter()
            writer.write_passages(corpus.passages())
            timings["passages_s"] = time.perf_counter() - t

            t = time.perf_counter()
            builder, dense, waiting = PostingsBuilder(), None, []
            exact = ExactTopK(queries)
            with pool:
                for vocabulary, term_ids, lengths, vectors, seconds in pool.imap(_tokenise_chunk, spans):
                    builder.add(vocabulary, term_ids, lengths)
                    exact.add(vectors)
                    for key, value in seconds.items():
                        worker_seconds[key] += value
                    waiting.append(vectors)
                    if dense is None and (sum(map(len, waiting)) >= training_size(dense_kind, size) or len(waiting) == len(spans)):
                        dense = DenseIndex.create(dense_kind, embedder.dimension, size, np.concatenate(waiting))
                    if dense is not None:
                        for block in waiting:
                            dense.add(block)
                        waiting = []
            timings["tokenise_embed_s"] = time.perf_counter() - t  # the workers have exited

            t = time.perf_counter()
            writer.write_dense(dense)
            del dense
            release_freed_memory()  # FAISS frees its cells' vectors to the heap, not to the system
            timings["dense_write_s"] = time.perf_counter() - t
            t = time.perf_counter()
            bm25 = builder.finish()
            del builder
            writer.write_bm25(bm25)
            timings["bm25_s"] = time.perf_counter() - t
            t = time.perf_counter()
            writer.write_homophones(analyzer.homophone_table(set(bm25.vocabulary)))
            average_terms = bm25.average_length
            del bm25
            index_folder = writer.commit(embedder, analyzer.dictionary.fingerprint())
            timings["homophones_commit_s"] = time.perf_counter() - t
        build_s = time.perf_counter() - start
    np.save(folder / "exact_top10.npy", exact.ids)
    np.save(folder / "exact_top10_scores.npy", exact.scores)
    files = {p.name: p.stat().st_size for p in index_folder.iterdir()}
    return {
        "size": size,
        "dense_kind": dense_kind,
        "workers": workers,
        "synthesise_s": round(synthesise_s, 2),
        **{k: round(v, 2) for k, v in timings.items()},
        "worker_tokenise_cpu_s": round(worker_seconds["tokenise"], 1),
        "worker_embed_cpu_s": round(worker_seconds["embed"], 1),
        "build_s": round(build_s, 1),
        "index_bytes": sum(files.values()),
        "index_files": files,
        "build_peak_mib": round(memory.peak_mib),
        "build_main_peak_mib": round(peak_rss_mib()),
        "average_terms": round(float(average_terms), 1),
    }


CHUNK = 20_000  # passages a worker tokenises at a time
EMBED_BATCH = 500
_job: dict = {}  # set before the workers fork: what they read


def _tokenise_chunk(span: tuple[int, int]):
    """BM25 terms (as ids into the chunk's own vocabulary) and vectors of a span of passages."""
    from array import array

    from qa_engine.service import passage_text

    corpus, analyzer, embedder = _job["corpus"], _job["analyzer"], _job["embedder"]
    texts = [passage_text(p) for p in corpus.passages(*span)]
    t = time.process_time()
    vocabulary: dict[str, int] = {}
    term_ids = array("i")
    lengths = np.empty(len(texts), dtype=np.int64)
    for number, text in enumerate(texts):
        terms = analyzer.tokens(text)
        term_ids.extend([vocabulary.setdefault(term, len(vocabulary)) for term in terms])
        lengths[number] = len(terms)
    tokenise = time.process_time() - t
    t = time.process_time()
    # StaticEmbedder.encode gathers every token's vector at once (1 KiB a token): a few hundred texts at a time.
    vectors = np.concatenate([embedder.encode(texts[i : i + EMBED_BATCH]) for i in range(0, len(texts), EMBED_BATCH)])
    embed = time.process_time() - t
    return list(vocabulary), np.frombuffer(term_ids, dtype=np.int32), lengths, vectors, {"tokenise": tokenise, "embed": embed}


def release_freed_memory() -> None:
    """Hand memory freed inside the C heap back to the system (glibc), so the next step's peak
    does not sit on top of it."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def training_size(dense_kind: str, size: int) -> int:
    """Vectors to collect before creating the dense index (IVF learns its cells from them)."""
    from qa_engine.dense import ivf_cells

    return 64 * ivf_cells(size) if dense_kind == "ivf" else 0


class ExactTopK:
    """Exact inner-product top 10 of each question over vectors given in blocks: the truth for recall@10."""

    def __init__(self, queries: np.ndarray):
        self.queries = queries
        self.ids = np.zeros((len(queries), 0), dtype=np.int64)
        self.scores = np.zeros((len(queries), 0), dtype=np.float32)
        self.seen = 0

    def add(self, vectors: np.ndarray) -> None:
        block = self.queries @ vectors.T  # questions x block
        k = min(RECALL_K, block.shape[1])
        top = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < block.shape[1] else np.argsort(-block, axis=1)
        ids = np.concatenate([self.ids, top + self.seen], axis=1)
        scores = np.concatenate([self.scores, np.take_along_axis(block, top, axis=1)], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :RECALL_K]
        self.ids, self.scores = np.take_along_axis(ids, order, 1), np.take_along_axis(scores, order, 1)
        self.seen += vectors.shape[0]


class MemorySampler:
    """Peak of the summed proportional set size (shared pages counted once) of this process and
    a pool's workers, sampled every half second."""

    def __init__(self, pool):
        self.pids = [os.getpid()] + [worker.pid for worker in pool._pool]
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.peak_mib = max(self.peak_mib, sum(pss_mib(pid) for pid in self.pids))
            if self._stop.wait(0.5):
                return


def pss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def serve(size: int, work: Path, rounds: int) -> dict:
    """Load the built synthetic index as a service does, then time asks and profile them."""
    from qa_engine.config import Settings
    from qa_engine.service import QAService

    folder = size_folder(work, size)
    questions = load_questions()
    start = time.perf_counter()
    service = QAService(Settings.from_env(home=folder / "home"))
    service.ask(questions[0]["question"], as_of=questions[0].get("as_of"), record=False)
    load_s = time.perf_counter() - start
    def ask(question, as_of):
        return service.ask(question, as_of, record=False)

    latencies = timed_asks(ask, questions, rounds)
    profiler = cProfile.Profile()
    profiler.enable()
    timed_asks(ask, questions, 1)
    profiler.disable()
    dense = service.retriever().index.dense
    recall = recall_at_settings(dense, service.retriever().embedder, questions, np.load(folder / "exact_top10.npy"),
                                np.load(folder / "exact_top10_scores.npy"))
    (folder / "profile.txt").write_text(profile_text(profiler), "utf-8")
    return {
        "size": size,
        "load_and_first_ask_s": round(load_s, 2),
        **percentiles(latencies, "ask"),
        "serve_peak_mib": round(peak_rss_mib()),
        "recall_at_10": recall,
        "hot_spots": hot_spots(profiler, len(questions)),
    }


def recall_at_settings(dense, embedder, questions: list[dict], exact_ids: np.ndarray, exact_scores: np.ndarray) -> dict:
    """Recall@10 against exact search, and search time, at the index's own setting and at other
    probes (IVF) or search depths (HNSW).

    Two measures: ``recall`` by id (a result counts if exact search returned that passage), and
    ``recall_ties`` (a result counts if its score reaches exact search's 10th score). Synthetic
    corpora hold many passages with equal vectors, and exact search picks among equals
    arbitrarily, so by id even exact search scores below 1; the tie-aware one is the fair measure.
    """
    import faiss

    queries = embedder.encode([q["question"] for q in questions])

    def measure() -> dict:
        found, elapsed = [], []
        for query in queries:
            t = time.perf_counter()
            scores, ids = dense.search(query, RECALL_K)
            elapsed.append((time.perf_counter() - t) * 1000)
            found.append((ids, scores))
        by_id = [len(set(ids.tolist()) & set(e.tolist())) / RECALL_K for (ids, _), e in zip(found, exact_ids)]
        by_score = [int((scores >= e[-1] - TIE_SLACK).sum()) / RECALL_K for (_, scores), e in zip(found, exact_scores)]
        return {"recall": round(float(np.mean(by_id)), 4), "recall_ties": round(float(np.mean(by_score)), 4),
                "search_p50_ms": round(float(np.percentile(elapsed, 50)), 3),
                "search_p99_ms": round(float(np.percentile(elapsed, 99)), 3)}

    result = {"own": measure()}
    kind = type(dense.index).__name__
    if "IVF" in kind:
        ivf = faiss.extract_index_ivf(dense.index)
        own = ivf.nprobe
        result["nprobe"] = own
        for probes in PROBES:
            ivf.nprobe = probes
            result[f"nprobe_{probes}"] = measure()
        ivf.nprobe = own
    elif "HNSW" in kind:
        own = dense.index.hnsw.efSearch
        result["efSearch"] = own
        for depth in EF_SEARCH:
            dense.index.hnsw.efSearch = depth
            result[f"efSearch_{depth}"] = measure()
        dense.index.hnsw.efSearch = own
    return result


def profile_text(profiler: cProfile.Profile) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
    out.write("\n\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    return out.getvalue()


def hot_spots(profiler: cProfile.Profile, asks: int, top: int = 8) -> list[dict]:
    """The functions with the most own time, in ms per ask."""
    stats = pstats.Stats(profiler).stats
    rows = sorted(stats.items(), key=lambda item: -item[1][2])[:top]
    return [
        {"function": f"{Path(file).name}:{line}({name})", "own_ms_per_ask": round(tottime * 1000 / asks, 3),
         "cumulative_ms_per_ask": round(cumtime * 1000 / asks, 3)}
        for (file, line, name), (_, _, tottime, cumtime, _) in rows
    ]


def baseline(size: int, work: Path, source: Path, rounds: int) -> dict:
    """The plain jieba + bm25s baseline over the same synthetic passages."""
    from bench.synthetic import synthesise
    from bench.measure import ScaledBaseline

    pieces, _ = load_pieces(work, source)
    corpus = synthesise(pieces, size)
    questions = load_questions()
    start = time.perf_counter()
    tokens, lengths = corpus.tokens(pieces.baseline)
    passages = list(corpus.passages())
    engine = ScaledBaseline(passages, tokens, lengths, pieces.baseline.vocabulary)
    build_s = time.perf_counter() - start
    del tokens
    engine.ask(questions[0]["question"], questions[0].get("as_of") or "2026-11-27")
    latencies = timed_asks(lambda question, as_of: engine.ask(question, as_of or "2026-11-27"), questions, rounds)
    return {"size": size, "baseline_build_s": round(build_s, 1), **percentiles(latencies, "baseline"),
            "baseline_peak_mib": round(peak_rss_mib())}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["build", "serve", "baseline"])
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--source", type=Path, help="QA_HOME of the real built index")
    parser.add_argument("--dense", default="flat", choices=["flat", "hnsw", "ivf"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="processes tokenising the text in a build")
    args = parser.parse_args(argv)
    if args.step == "build":
        result = build(args.size, args.work, args.source, args.dense, args.workers)
    elif args.step == "serve":
        result = serve(args.size, args.work, args.rounds)
    else:
        result = baseline(args.size, args.work, args.source, args.rounds)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
