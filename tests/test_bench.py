"""Smoke tests of the benchmark suite on the small fixture corpus (nothing here is timed)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qa_engine.config import Settings
from qa_engine.service import QAService
from qa_engine.static_embedder import StaticEmbedder

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import markdown, merge_results  # noqa: E402


def run_bench(args, home, tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps({"question": q}, ensure_ascii=False) for q in ["偶然所得税率", "虚开发票"]), "utf-8")
    environ = {**os.environ, "QA_HOME": str(home), "QA_BENCH_QUESTIONS": str(questions),
               "QA_BENCH_RESULTS": str(tmp_path / "results")}
    return subprocess.run([sys.executable, "bench/run.py", *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300)


@pytest.fixture
def static_home(tmp_path, small_laws, static_model):
    """The small laws built with a (tiny) static model, so a fresh process can load the index."""
    service = QAService(Settings.from_env(environ={}, home=tmp_path / "home"), embedder=StaticEmbedder(static_model[0]))
    service.ingest([small_laws])
    service.build()
    service.store.close()
    return tmp_path / "home"


def test_no_index_is_an_error_not_a_build(tmp_path):
    done = run_bench(["--quick", "--json"], tmp_path / "empty", tmp_path)
    assert done.returncode == 2
    assert "no built index at QA_HOME=" in done.stderr and done.stdout == ""
    assert not (tmp_path / "empty" / "indexes").exists()


def test_quick_json_and_a_small_scale_run(static_home, tmp_path):
    done = run_bench(["--quick", "--json", "--rounds", "1", "--cold-runs", "1", "--sizes", "300"], static_home, tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["passages"] == 10
    for key in ("ask_p50_ms", "ask_p99_ms", "baseline_p50_ms", "cold_start_s"):
        assert report[key] > 0, key
    assert report["cold_start_heavy_imports"] == []
    (row,) = report["scale"]
    assert "error" not in row, row.get("error")
    assert row["size"] == 300 and row["index_bytes"] > 0 and row["ask_calls"] == 2 and row["baseline_calls"] == 2
    assert row["recall_at_10"]["own"]["recall"] >= 0.9  # exact search: only float ties differ
    section = markdown(merge_results(tmp_path / "latest.json", report))
    assert "| 300 | flat |" in section and "## Speed and scale" in section


def test_a_quick_run_rewrites_the_real_corpus_figures_and_keeps_the_docs_scale_part(static_home, tmp_path):
    from bench.report import write_docs

    done = run_bench(["--quick", "--json", "--rounds", "1", "--cold-runs", "1", "--sizes", "300"], static_home, tmp_path)
    full = json.loads(done.stdout)
    docs = tmp_path / "docs"
    write_docs(merge_results(tmp_path / "first.json", full), docs)
    measured = (docs / "BENCHMARKS.md").read_text("utf-8")
    assert "| 300 | flat |" in measured
    quick = {**full, "scale": [], "ask_p50_ms": 123.456, "machine": {**full["machine"], "measured_at": "2030-01-01 00:00"}}
    write_docs(merge_results(tmp_path / "elsewhere.json", quick), docs, scale_measured=False)  # another clone: no results of its own
    rewritten = (docs / "BENCHMARKS.md").read_text("utf-8")
    assert "123.46" in rewritten and "the real corpus on 2030-01-01 00:00" in rewritten
    scale = measured[measured.index("### Scale: synthetic corpora"):measured.index("Reading these numbers:")]
    assert scale in rewritten and f"Measured on {full['machine']['measured_at']}." in scale


def test_load_bench_counts_server_cpu_and_states_the_ceiling():
    sys.path.insert(0, str(ROOT / "bench"))
    import load

    busy_child = subprocess.Popen([sys.executable, "-c", "sum(range(30_000_000)); import time; time.sleep(60)"])
    try:
        deadline = time.time() + 30
        while (load.server_cpu_seconds(busy_child.pid) or 0) < 0.3 and time.time() < deadline:
            time.sleep(0.2)
        child_cpu = load.server_cpu_seconds(busy_child.pid)
        assert child_cpu >= 0.3
        assert load.server_cpu_seconds(os.getpid()) >= child_cpu, "a process's figure includes its children"
    finally:
        busy_child.kill()
        busy_child.wait()
    assert "at most 400 requests/s" in load.cpu_note({"server_cpu_ms": 5.0}, 2)
    assert load.cpu_note({}, 2) == ""


def test_load_bench_reports_paced_runs_beside_saturation():
    sys.path.insert(0, str(ROOT / "bench"))
    import argparse

    import load

    fast = {"pause_ms": 45, "requests": 6288, "rps": 313.8, "p50_ms": 4.1, "p99_ms": 44.0, "max_ms": 83.7, "statuses": {"200": 6288}}
    slow = {**fast, "pause_ms": 25, "rps": 401.2, "p99_ms": 71.5}
    assert load.paced_rows([fast, slow], 16).splitlines() == [
        "| POST /v1/ask, each client pausing 45 ms | 16 | 6288 | 313.8 | 4.1 | 44.0 | 83.7 | {'200': 6288} |",
        "| POST /v1/ask, each client pausing 25 ms | 16 | 6288 | 401.2 | 4.1 | 71.5 | 83.7 | {'200': 6288} |",
    ]
    assert "with p99 within 50 ms was 313.8 requests/s" in load.paced_note([fast, slow], 16)
    assert "No paced run kept p99 within 50 ms" in load.paced_note([slow], 16)
    assert load.paced_rows([], 16) == load.paced_note([], 16) == ""
    assert load.pause_list("60,45,0") == [60, 45]
    assert load.pause_list("0") == []
    for bad in ("fast", "45,-5", "45,,30"):
        with pytest.raises(argparse.ArgumentTypeError):
            load.pause_list(bad)


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs Linux's ss to list a process's connections")
def test_load_bench_tells_how_the_connections_are_split_between_the_server_processes():
    sys.path.insert(0, str(ROOT / "bench"))
    import load

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        accepted = [listener.accept()[0] for _ in clients]
        try:
            assert load.connections_per_worker(port) == [3], "the server's ends only, all in this process"
        finally:
            for end in clients + accepted:
                end.close()
    assert "held 9 and 7 of the connections" in load.split_note([9, 7])
    assert load.split_note(None) == ""


def test_load_bench_reference_server_does_the_work_it_is_given():
    sys.path.insert(0, str(ROOT / "bench"))
    import load

    spent = {}
    for loops in (1_000, 200_000):
        port = load.free_port()
        server = load.start_reference(port, 1, loops)
        try:
            load.run_load(port, "/", 2, 4, ["warm up"])
            before = load.server_cpu_seconds(server.pid)
            result = load.run_load(port, "/", 2, 40, ["reference"])
            spent[loops] = (load.server_cpu_seconds(server.pid) - before) / 40
        finally:
            server.terminate()
            server.wait(timeout=60)
        assert result["statuses"] == {"200": 40}
    assert spent[200_000] > 5 * spent[1_000], spent

    run = {"requests": 9000, "rps": 450.0, "p50_ms": 33.0, "p99_ms": 80.0, "max_ms": 120.0, "statuses": {"200": 9000},
           "server_cpu_ms": 4.4}
    assert load.reference_rows([run], 16) == "| reference app, 4.4 ms CPU a request | 16 | 9000 | 450.0 | 33.0 | 80.0 | 120.0 | {'200': 9000} |\n"
    assert "half of it" in load.reference_note([run]) and load.reference_note([]) == ""


def test_load_bench_times_the_machine_alone_in_pieces_and_runs_of_pieces():
    sys.path.insert(0, str(ROOT / "bench"))
    import load

    jitter = load.machine_jitter(cpu_ms=1.0, in_a_row=4, seconds=0.5)
    assert (jitter["cpu_ms"], jitter["in_a_row"], jitter["seconds"]) == (1.0, 4, 0.5)
    assert 0 < jitter["piece_p50_ms"] <= jitter["piece_p99_ms"]
    assert jitter["row_p50_ms"] >= 3 * jitter["piece_p50_ms"], "four pieces in a row take about four times one"
    note = load.jitter_note(jitter, 16, 2)
    assert "4 pieces in a row" in note and f"p99 {jitter['row_p99_ms']} ms" in note
    assert load.jitter_note(None, 16, 2) == ""
