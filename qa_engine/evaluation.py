"""Scoring answers against a labelled question set (the matching rule of shared/eval/README.md)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Callable

from .corpus import short_title_of
from .errors import InvalidInput

ANSWERABLE = ("policy", "superseded")
CUTOFF = 10


def load_gold(path: Path) -> list[dict]:
    items = []
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read ({exc})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path} line {number}: invalid JSON ({exc.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get("question"), str):
            raise InvalidInput(f"{path} line {number}: needs at least a 'question'")
        item.setdefault("id", f"line{number}")
        item.setdefault("category", "policy")
        item.setdefault("expected", [])
        items.append(item)
    return items


def citation_matches(citation: dict, expected: dict) -> bool:
    """Expected 'doc' is a short title, or a full document id where versions differ (发票管理办法)."""
    if citation["article"] != expected["article"]:
        return False
    return expected["doc"] in (citation["doc"], short_title_of(citation["doc"]))


def first_hit_rank(answers: list[dict], expected: list[dict]) -> int | None:
    for answer in answers[:CUTOFF]:
        if any(citation_matches(c, e) for c in answer["citations"] for e in expected):
            return answer["rank"]
    return None


def evaluate(items: list[dict], ask: Callable[[dict], dict]) -> dict:
    """Run every item through ``ask`` and compute the metrics, overall and per category."""
    rows = []
    for item in items:
        started = time.perf_counter()
        response = ask(item)
        elapsed = (time.perf_counter() - started) * 1000
        rank = first_hit_rank(response["answers"], item["expected"]) if item["expected"] else None
        top = response["answers"][0] if response["answers"] else None
        rows.append(
            {
                "id": item["id"],
                "category": item["category"],
                "route": response["route"],
                "rank": rank,
                "answerable": item["category"] in ANSWERABLE and bool(item["expected"]),
                "has_expected": bool(item["expected"]),
                "top_superseded": bool(top) and any(c["status"] != "in_force" for c in top["citations"]),
                "ms": elapsed,
                "kind": item.get("kind"),
            }
        )
    report = {"overall": summarise(rows), "by_category": {}, "items": rows}
    for category in sorted({r["category"] for r in rows}):
        report["by_category"][category] = summarise([r for r in rows if r["category"] == category])
    kinds = sorted({r["kind"] for r in rows if r["kind"]})
    if kinds:
        report["by_kind"] = {k: summarise([r for r in rows if r["kind"] == k]) for k in kinds}
    return report


def summarise(rows: list[dict]) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    scored = [r for r in rows if r["has_expected"]]
    routed_answer = [r for r in rows if r["route"] == "answer"]
    out_of_scope = [r for r in rows if r["category"] == "out_of_scope"]
    complaints = [r for r in rows if r["category"] == "complaint"]
    latencies = sorted(r["ms"] for r in rows)

    def share(part, whole):
        return round(len(part) / len(whole), 4) if whole else None

    return {
        "n": len(rows),
        "answerable": len(answerable),
        "hit@1": share([r for r in answerable if r["rank"] == 1], answerable),
        "hit@5": share([r for r in answerable if r["rank"] and r["rank"] <= 5], answerable),
        "mrr@10": round(sum(1 / r["rank"] for r in answerable if r["rank"]) / len(answerable), 4) if answerable else None,
        "cited_hit@1": share([r for r in scored if r["rank"] == 1], scored),
        "precision": share([r for r in routed_answer if r["answerable"] and r["rank"] == 1], routed_answer),
        "coverage": share([r for r in answerable if r["route"] == "answer"], answerable),
        "out_of_scope_abstained": share([r for r in out_of_scope if r["route"] != "answer"], out_of_scope),
        "complaint_routed": share([r for r in complaints if r["route"] == "complaint"], complaints),
        "superseded_at_top": share([r for r in rows if r["top_superseded"]], rows),
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2) if latencies else None,
    }


METRICS = ["hit@1", "hit@5", "mrr@10", "precision", "coverage", "out_of_scope_abstained", "complaint_routed", "superseded_at_top", "p50_ms"]


def format_table(named_reports: dict[str, dict]) -> str:
    """A plain-text table: one row per system (or category), one column per metric."""
    header = ["", "n", *METRICS]
    lines = [header]
    for name, summary in named_reports.items():
        lines.append([name, str(summary["n"]), *("-" if summary.get(m) is None else f"{summary[m]:.3f}".rstrip("0").rstrip(".") if isinstance(summary[m], float) else str(summary[m]) for m in METRICS)])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in lines)


METRIC_LABELS = {
    "n": "n",
    "hit@1": "hit@1",
    "hit@5": "hit@5",
    "mrr@10": "MRR@10",
    "precision": "auto-answer precision",
    "coverage": "coverage",
    "out_of_scope_abstained": "out-of-scope abstained",
    "complaint_routed": "complaints routed",
    "superseded_at_top": "superseded at top",
    "p50_ms": "p50 ms",
    "p99_ms": "p99 ms",
}


def format_markdown_table(named_reports: dict[str, dict], metrics: list[str] | None = None) -> str:
    """A markdown table: one row per system (or category), one column per metric; '–' where a
    metric does not apply (no answerable items, no complaints...)."""
    metrics = metrics or ["n", *METRICS, "p99_ms"]
    lines = [
        "| | " + " | ".join(METRIC_LABELS.get(m, m) for m in metrics) + " |",
        "|---|" + "---:|" * len(metrics),
    ]
    for name, summary in named_reports.items():
        cells = []
        for m in metrics:
            value = summary.get(m)
            if value is None:
                cells.append("–")
            elif m.endswith("_ms"):
                cells.append(f"{value:.1f}")
            elif isinstance(value, float):
                cells.append(f"{value:.3f}")
            else:
                cells.append(str(value))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
