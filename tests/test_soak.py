"""bench/soak.py: a short soak of `qa serve` over the small laws (test embedder) has no errors."""

from __future__ import annotations

from pathlib import Path

from bench.soak import is_error, memory_summary, soak, write_docs
from conftest import FakeEmbedder, build_small_service
from qa_engine.config import Settings
from qa_engine.service import QAService

ROOT = Path(__file__).resolve().parent.parent


def test_a_short_soak_has_no_errors(tmp_path):
    build_small_service(tmp_path).store.close()

    summary = soak(tmp_path / "home", seconds=8, clients=4, workers=2, sample_every=1,
                   rss_bound_mib=200, cli=ROOT / "tests" / "fake_cli.py")

    assert summary["errors"] == 0, summary["error_samples"]
    assert summary["server_tracebacks"] == 0 and summary["worker_restarts"] == 0
    assert all(kind["requests"] > 0 for kind in summary["kinds"].values()), summary["kinds"]
    assert summary["kinds"]["ask"]["requests"] > summary["kinds"]["feedback"]["requests"]
    assert summary["memory"]["samples"] >= 5 and len(summary["memory"]["processes"]) == 3  # master + 2 workers
    assert summary["ok"]

    # Nothing was lost: every accepted request is in the knowledge base.
    kinds = summary["kinds"]
    kb = QAService(Settings.from_env(environ={}, home=tmp_path / "home"), embedder=FakeEmbedder())
    try:
        def count(sql: str) -> int:
            return kb.store.db.execute(sql).fetchone()[0]

        assert count("SELECT count(*) FROM query_log") == kinds["ask"]["statuses"]["200"]
        assert count("SELECT count(*) FROM feedback") == kinds["feedback"]["statuses"]["201"]
        assert count("SELECT count(*) FROM queue WHERE kind = 'callback'") == kinds["escalation"]["statuses"]["201"]
    finally:
        kb.store.close()

def test_what_counts_as_an_error():
    assert [is_error(o) for o in ("200", "201", "429")] == [False] * 3
    assert [is_error(o) for o in ("400", "500", "503", "ConnectionResetError", "RemoteDisconnected")] == [True] * 5


def test_memory_growth_is_measured_after_the_first_minute():
    mib = 1024 * 1024
    samples = [{"t": t, "total": (300 + t / 10) * mib, "rss": {1: 100 * mib, 2: (200 + t / 10) * mib}}
               for t in range(0, 181, 5)]
    memory = memory_summary(samples, wall=180, bound_mib=50, every=5)
    assert (memory["baseline_at_s"], memory["baseline_mib"], memory["end_mib"]) == (60, 306.0, 318.0)
    assert memory["growth_mib"] == 12.0 and memory["within_bound"]
    assert memory_summary(samples, wall=180, bound_mib=10, every=5)["within_bound"] is False


def test_write_docs_replaces_only_the_soak_section(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## HTTP load\n\nload figures\n\n<!-- quality:start -->\n## Quality\n<!-- quality:end -->\n")
    first = "<!-- soak:start (written by bench/soak.py --write-docs) -->\n## Soak\n\nfirst\n<!-- soak:end -->"
    write_docs(first, path)
    write_docs(first.replace("first", "second"), path)
    text = path.read_text()
    assert text.count("## Soak") == 1 and "second" in text and "first" not in text
    assert text.index("load figures") < text.index("## Soak") < text.index("<!-- quality:start -->")
    assert text.endswith("## Quality\n<!-- quality:end -->\n")


def test_the_load_report_leaves_the_soak_section_alone(tmp_path):
    from bench.load import write_report

    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## HTTP load\n\nold\n\n<!-- soak:start -->\n## Soak\n\nsoak figures\n<!-- soak:end -->\n")
    write_report("## HTTP load\n\nnew\n\n", path)
    assert path.read_text() == "# Benchmarks\n\n## HTTP load\n\nnew\n\n<!-- soak:start -->\n## Soak\n\nsoak figures\n<!-- soak:end -->\n"
