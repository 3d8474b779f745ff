"""Speed and scale benchmarks: one command for the whole suite.

Measures, on the index at QA_HOME (build it first with `qa ingest ... && qa build`):
ask latency in-process (p50/p99, query embedding included), the plain jieba + bm25s
baseline over the same passages in the same run, cold start in a fresh process, and where
the time goes. With --sizes, also synthetic corpora recombined from the same articles:
build time, index size, peak memory, ask latency and recall of the approximate index.

Examples:
    python bench/run.py --quick --json          # < 1 minute, one JSON object on stdout
    python bench/run.py --sizes 10k,100k        # writes docs/BENCHMARKS.md and docs/img/*.png
    python bench/run.py --sizes 1m              # the million-passage run (about 40 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import cold_start, load_questions, percentiles, questions_path, timed_asks  # noqa: E402

RESULTS = Path(os.environ.get("QA_BENCH_RESULTS", ROOT / "bench" / "results"))
LARGE = 100_000  # from here on the dense index is approximate (IVF) unless --dense says otherwise


def parse_size(text: str) -> int:
    text = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if factor > 1 else text
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 10k, 100k, 1m)") from None
    if value < 100:
        raise argparse.ArgumentTypeError(f"size {text!r} is too small: give at least 100 passages")
    return value


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure_real(rounds: int, cold_runs: int = 3) -> dict:
    """Ask latency, the baseline and cold start on the index at QA_HOME, all in this run."""
    from qa_engine.service import QAService

    questions = load_questions()
    service = QAService()
    retriever = service.retriever()
    service.ask(questions[0]["question"], questions[0]["as_of"], record=False)

    def ask(question, as_of):
        return service.ask(question, as_of, record=False)

    result = {"passages": len(retriever.index.passages), "questions": len(questions),
              "questions_from": questions_path().name if questions_path().exists() else "a built-in list",
              "dense_index": retriever.index.manifest.get("dense_index")}
    result.update(percentiles(timed_asks(ask, questions, rounds), "ask"))
    baseline = service.baseline()
    baseline.ask(questions[0]["question"], questions[0]["as_of"] or service.today())
    result.update(percentiles(
        timed_asks(lambda q, as_of: baseline.ask(q, as_of or service.today()), questions, rounds), "baseline"))
    result["ratio_p50"] = round(result["ask_p50_ms"] / result["baseline_p50_ms"], 2)
    result["ratio_p99"] = round(result["ask_p99_ms"] / result["baseline_p99_ms"], 2)
    profiler = cProfile.Profile()
    profiler.enable()
    timed_asks(ask, questions, 1)
    profiler.disable()
    from bench.scale import hot_spots

    result["hot_spots"] = hot_spots(profiler, len(questions))
    result.update(cold_start(questions[0]["question"], cold_runs))
    return result


def run_step(step: str, size: int, work: Path, source: Path, dense: str, rounds: int, timeout: float) -> dict:
    command = [sys.executable, "-m", "bench.scale", step, "--size", str(size), "--work", str(work),
               "--source", str(source), "--dense", dense, "--rounds", str(rounds)]
    load_average = os.getloadavg()[0]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"{step} at {size} passages did not finish within {timeout:.0f} s"}
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        return {"error": f"{step} at {size} passages failed: " + " | ".join(tail)}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result[f"{step}_wall_s"] = round(time.perf_counter() - start, 1)
    result[f"{step}_load_average"] = round(load_average, 2)
    return result


def measure_size(size: int, source: Path, dense: str, rounds: int, timeout: float) -> dict:
    work = RESULTS / "scale"
    kind = dense or ("ivf" if size >= LARGE else "flat")
    row = {"size": size}
    for step in ("build", "serve", "baseline"):
        log(f"  {step} at {size:,} passages ({kind}) ...")
        result = run_step(step, size, work, source, kind, rounds, timeout)
        row.update(result)
        if "error" in result:
            log(f"  {result['error']}")
            break
    if "ask_p50_ms" in row and "baseline_p50_ms" in row:
        row["ratio_p50"] = round(row["ask_p50_ms"] / row["baseline_p50_ms"], 2)
        row["ratio_p99"] = round(row["ask_p99_ms"] / row["baseline_p99_ms"], 2)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the index at QA_HOME (under a minute)")
    parser.add_argument("--sizes", type=lambda s: [parse_size(x) for x in s.split(",") if x.strip()],
                        help="synthetic corpus sizes, e.g. 10k,100k,1m (default 10k,100k; none with --quick)")
    parser.add_argument("--dense", choices=["flat", "hnsw", "ivf"],
                        help=f"dense index at scale (default: flat, ivf from {LARGE:,} passages)")
    parser.add_argument("--rounds", type=int, default=3, help="times each dev question is asked (default 3)")
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh processes for cold start; the median counts (default 3)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per scale step (default 1800)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress goes to stderr)")
    parser.add_argument("--docs", action=argparse.BooleanOptionalAction, default=None,
                        help="write docs/BENCHMARKS.md and docs/img/ (default: yes, except with --json)")
    args = parser.parse_args(argv)

    from qa_engine.config import Settings
    from qa_engine.index import current_build_id

    home = Settings.from_env().home.resolve()
    if current_build_id(home) is None:
        log(f'Error: no built index at QA_HOME={home}: run "qa ingest ../shared/corpus/laws corpus/answers" '
            'and "qa build" with that QA_HOME first (the benchmark does not build one for you)')
        return 2
    os.environ["QA_HOME"] = str(home)
    sizes = args.sizes if args.sizes is not None else ([] if args.quick else [10_000, 100_000])

    log(f"measuring the index at {home} ...")
    report = measure_real(args.rounds, args.cold_runs)
    report["scale"] = []
    for size in sizes:
        report["scale"].append(measure_size(size, home, args.dense, args.rounds, args.timeout))
    report["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "measured_at": time.strftime("%Y-%m-%d %H:%M"),
                         "load_average": round(os.getloadavg()[0], 2)}

    RESULTS.mkdir(parents=True, exist_ok=True)
    from bench.report import merge_results, write_docs

    merged = merge_results(RESULTS / "latest.json", report)
    if args.docs if args.docs is not None else not args.json:
        write_docs(merged, ROOT / "docs", scale_measured=bool(sizes))
        log("wrote docs/BENCHMARKS.md and docs/img/")
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        log(json.dumps({k: v for k, v in report.items() if k not in ("hot_spots", "scale")}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
