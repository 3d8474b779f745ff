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
import pickle
import pstats
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import load_questions, percentiles, timed_asks  # noqa: E402

TOKENISE_SAMPLE = 2000
RECALL_K = 10
PROBES = (4, 8, 16, 32, 64)


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


def build(size: int, work: Path, source: Path, dense_kind: str) -> dict:
    """Build the engine's index over ``size`` synthetic passages in ``<work>/n<size>/home``."""
    import qa_engine.index
    from bench.fast_bm25 import bm25_from_token_ids
    from bench.synthetic import synthesise
    from qa_engine.static_embedder import StaticEmbedder
    from qa_engine.text import Dictionary, TextAnalyzer

    timings: dict[str, float] = {}
    start = time.perf_counter()
    pieces, model = load_pieces(work, source)
    embedder = StaticEmbedder(model)
    corpus = synthesise(pieces, size)
    timings["synthesise_s"] = time.perf_counter() - start

    # Tokenising real text is what a real build of this corpus would spend; measured on a sample.
    settings = source_service(source).settings
    analyzer = TextAnalyzer(Dictionary.load(settings.corpus_dir / "dictionary"))
    sample = [p for _, p in zip(range(TOKENISE_SAMPLE), corpus.passages())]
    texts = [f"{p.title} {p.chapter} {p.text}" for p in sample]
    t = time.perf_counter()
    for text in texts:
        analyzer.tokens(text)
    per_passage = (time.perf_counter() - t) / len(texts)
    timings["tokenise_estimated_s"] = per_passage * size

    t = time.perf_counter()
    tokens, lengths = corpus.tokens(pieces.engine)
    bm25 = bm25_from_token_ids(tokens, lengths, pieces.engine.vocabulary)
    del tokens
    timings["bm25_s"] = time.perf_counter() - t

    t = time.perf_counter()
    vectors = mean_vectors(corpus, pieces.model, embedder)
    timings["embed_s"] = time.perf_counter() - t
    # Embedding cost of a real build includes BPE-tokenising the text: measured on the sample.
    t = time.perf_counter()
    embedder.token_ids(texts)
    timings["embed_tokenise_estimated_s"] = (time.perf_counter() - t) / len(texts) * size

    exact = exact_top_k(vectors, embedder, load_questions())
    folder = size_folder(work, size)
    home = folder / "home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    np.save(folder / "exact_top10.npy", exact)

    t = time.perf_counter()
    passages = list(corpus.passages())
    timings["passages_s"] = time.perf_counter() - t
    t = time.perf_counter()
    index_folder = qa_engine.index.write_index(home, passages, bm25, vectors, embedder,
                                               analyzer.dictionary.fingerprint(),
                                               analyzer.homophone_table(set(bm25.vocabulary)), dense_kind)
    timings["write_index_s"] = time.perf_counter() - t
    files = {p.name: p.stat().st_size for p in index_folder.iterdir()}
    measured = sum(v for k, v in timings.items() if not k.endswith("estimated_s") and k != "synthesise_s")
    return {
        "size": size,
        "dense_kind": dense_kind,
        **{k: round(v, 2) for k, v in timings.items()},
        "build_measured_s": round(measured, 1),
        "build_total_estimated_s": round(measured + timings["tokenise_estimated_s"] + timings["embed_tokenise_estimated_s"], 1),
        "index_bytes": sum(files.values()),
        "index_files": files,
        "build_peak_mib": round(peak_rss_mib()),
        "average_terms": round(float(lengths.mean()), 1),
    }


def mean_vectors(corpus, stream, embedder, chunk: int = 50_000) -> np.ndarray:
    """Each passage's vector from its units' model tokens: exactly what the static model computes
    for the joined text, up to BPE merges across a sentence boundary."""
    from scipy import sparse

    weights = embedder._weights
    vectors = np.zeros((len(corpus), embedder.dimension), dtype=np.float32)
    unit_ends = np.cumsum(corpus.unit_counts)
    for first in range(0, len(corpus), chunk):
        last = min(first + chunk, len(corpus))
        begin = unit_ends[first - 1] if first else 0
        tokens, unit_lengths = stream.gather(corpus.units[begin : unit_ends[last - 1]])
        owners = np.repeat(np.repeat(np.arange(last - first), corpus.unit_counts[first:last]), unit_lengths)
        counts = sparse.csr_matrix((np.ones(len(tokens), dtype=np.float32), (owners, tokens)),
                                   shape=(last - first, len(weights)))
        block = np.asarray(counts @ weights, dtype=np.float32)  # the mean's scale drops out below
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        vectors[first:last] = block / np.where(norms == 0, 1, norms)
    return vectors


def exact_top_k(vectors: np.ndarray, embedder, questions: list[dict]) -> np.ndarray:
    """Exact inner-product top 10 of each question's vector, the truth for recall@10."""
    queries = embedder.encode([q["question"] for q in questions])
    scores = np.concatenate([vectors[i : i + 200_000] @ queries.T for i in range(0, len(vectors), 200_000)])
    return np.argsort(-scores, axis=0)[:RECALL_K].T


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
    recall = recall_at_probes(dense, service.retriever().embedder, questions, np.load(folder / "exact_top10.npy"))
    (folder / "profile.txt").write_text(profile_text(profiler), "utf-8")
    return {
        "size": size,
        "load_and_first_ask_s": round(load_s, 2),
        **percentiles(latencies, "ask"),
        "serve_peak_mib": round(peak_rss_mib()),
        "recall_at_10": recall,
        "hot_spots": hot_spots(profiler, len(questions)),
    }


def recall_at_probes(dense, embedder, questions: list[dict], exact: np.ndarray) -> dict:
    """Recall@10 against exact search, and search time, at the index's own setting (and other probes for IVF)."""
    import faiss

    queries = embedder.encode([q["question"] for q in questions])

    def measure() -> dict:
        found, elapsed = [], []
        for query in queries:
            t = time.perf_counter()
            _, ids = dense.search(query, RECALL_K)
            elapsed.append((time.perf_counter() - t) * 1000)
            found.append(ids)
        recall = float(np.mean([len(set(f.tolist()) & set(e.tolist())) / RECALL_K for f, e in zip(found, exact)]))
        return {"recall": round(recall, 4), "search_p50_ms": round(float(np.percentile(elapsed, 50)), 3)}

    result = {"own": measure()}
    ivf = faiss.try_extract_index_ivf(dense.index) if "IVF" in type(dense.index).__name__ else None
    if ivf is not None:
        own = ivf.nprobe
        result["nprobe"] = own
        for probes in PROBES:
            ivf.nprobe = probes
            result[f"nprobe_{probes}"] = measure()
        ivf.nprobe = own
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
    args = parser.parse_args(argv)
    if args.step == "build":
        result = build(args.size, args.work, args.source, args.dense)
    elif args.step == "serve":
        result = serve(args.size, args.work, args.rounds)
    else:
        result = baseline(args.size, args.work, args.source, args.rounds)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
