"""Scale measurements, each step in its own process so peak memory is that step's alone.

    python -m bench.scale build    --size 100000 --work bench/results/scale --source $QA_HOME
    python -m bench.scale serve    --size 100000 --work bench/results/scale
    python -m bench.scale baseline --size 100000 --work bench/results/scale --source $QA_HOME
    python -m bench.scale ingest   --size 100000 --work bench/results/scale --source $QA_HOME

``ingest`` stores the synthetic passages as articles of a knowledge base (``n<size>/kb``), so
``QA_HOME=<work>/n<size>/kb qa build`` measures the product's own build at that size.

Each prints one JSON object. ``bench/run.py`` drives them; run them by hand to profile one.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
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
    """Build the engine's index over ``size`` synthetic passages in ``<work>/n<size>/home`` with
    the product's streamed build (``qa_engine.build.build_index``, as ``qa build`` runs it), in
    ``workers`` processes; beside it, each chunk's vectors go to an exact search, the truth for
    recall@10."""
    from bench.synthetic import synthesise
    from qa_engine.build import build_index
    from qa_engine.static_embedder import StaticEmbedder
    from qa_engine.text import Dictionary, TextAnalyzer

    pieces, model = load_pieces(work, source)
    embedder = StaticEmbedder(model)
    start = time.perf_counter()
    corpus = synthesise(pieces, size)
    synthesise_s = time.perf_counter() - start
    settings = source_service(source).settings
    analyzer = TextAnalyzer(Dictionary.load(settings.corpus_dir / "dictionary"))
    exact = ExactTopK(embedder.encode([q["question"] for q in load_questions()]))
    folder = size_folder(work, size)
    home = folder / "home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)

    with MemorySampler() as memory:
        start = time.perf_counter()
        report = build_index(home, corpus.passages(), size, analyzer, embedder, dense_kind, workers, on_vectors=exact.add)
        build_s = time.perf_counter() - start
    np.save(folder / "exact_top10.npy", exact.ids)
    np.save(folder / "exact_top10_scores.npy", exact.scores)
    files = {p.name: p.stat().st_size for p in report.folder.iterdir()}
    average_terms = json.loads((report.folder / "bm25.json").read_text("utf-8"))["average_length"]
    return {
        "size": size,
        "dense_kind": dense_kind,
        "workers": workers,
        "synthesise_s": round(synthesise_s, 2),
        **{f"{step}_s": round(seconds, 2) for step, seconds in report.seconds.items()},
        "worker_tokenise_cpu_s": round(report.cpu_seconds["tokenise"], 1),
        "worker_embed_cpu_s": round(report.cpu_seconds["embed"], 1),
        "build_s": round(build_s, 1),
        "index_bytes": sum(files.values()),
        "index_files": files,
        "build_peak_mib": round(memory.peak_mib),
        "build_main_peak_mib": round(peak_rss_mib()),
        "average_terms": round(float(average_terms), 1),
    }


def ingest(size: int, work: Path, source: Path) -> dict:
    """A knowledge base (``<work>/n<size>/kb``) holding ``size`` synthetic articles, so ``qa build``
    itself can be measured at that size: each synthetic passage is stored as an article of the
    real law it derives from (article "第三条~17"), so its indexed text is the benchmark's."""
    from bench.synthetic import synthesise
    from qa_engine.config import Settings
    from qa_engine.corpus import Article, Document
    from qa_engine.service import QAService

    pieces, _ = load_pieces(work, source)
    corpus = synthesise(pieces, size)
    home = size_folder(work, size) / "kb"
    shutil.rmtree(home, ignore_errors=True)
    service = QAService(Settings.from_env(home=home))
    documents = {d["doc"]: d for d in source_service(source).store.documents()}
    start = time.perf_counter()
    by_doc: dict[str, list] = {}
    for number, passage in enumerate(corpus.passages()):
        real = pieces.passages[corpus.base[number]]
        chapter, _, section = real.chapter.partition(" ")
        by_doc.setdefault(passage.doc, []).append(
            Article(passage.doc, f"{passage.article}~{number}", number, passage.text, chapter, section))
    for doc, articles in by_doc.items():
        d = documents[doc]
        service.store.save_document(Document(doc, d["title"], d["version_date"], d["stated_effective"], d["repeals"],
                                             articles, f"synthetic-{size}-{doc}", "bench/scale.py ingest"))
    return {"size": size, "home": str(home), "documents": len(by_doc), "articles": service.store.article_count(),
            "ingest_s": round(time.perf_counter() - start, 1)}


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
    its child processes (the build's workers), sampled every half second."""

    def __init__(self):
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
            pids = [os.getpid(), *children(os.getpid())]
            self.peak_mib = max(self.peak_mib, sum(pss_mib(pid) for pid in pids))
            if self._stop.wait(0.5):
                return


def children(parent: int) -> list[int]:
    """Processes whose parent is ``parent`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry))
    return found


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
    parser.add_argument("step", choices=["build", "serve", "baseline", "ingest"])
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--source", type=Path, help="QA_HOME of the real built index")
    parser.add_argument("--dense", default="flat", choices=["flat", "hnsw", "ivf"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="processes tokenising the text in a build")
    args = parser.parse_args(argv)
    if args.step == "build":
        result = build(args.size, args.work, args.source, args.dense, args.workers)
    elif args.step == "ingest":
        result = ingest(args.size, args.work, args.source)
    elif args.step == "serve":
        result = serve(args.size, args.work, args.rounds)
    else:
        result = baseline(args.size, args.work, args.source, args.rounds)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
