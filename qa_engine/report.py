"""Hot questions and quality: what callers asked over a period, as a summary and an HTML report.

Questions come from the query log, where personal data was redacted before storing. They are
grouped by meaning with the service's embedder (greedy clustering: a question joins the
first, more frequent, cluster whose leading question is similar enough), so 年终奖怎么交税 and
年终奖个税怎么算 count as one hot question.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from . import curation
from .errors import InvalidInput, QAError
from .text import normalise

SIMILARITY = 0.8
TOP = 10


def parse_since(value: str, now: datetime | None = None, option: str = "--since") -> datetime:
    """'7d', '24h', '2w' before now, or a date YYYY-MM-DD."""
    now = now or datetime.now(timezone.utc)
    text = (value or "").strip().lower()
    match = re.fullmatch(r"(\d+)\s*([hdw])", text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - {"h": timedelta(hours=amount), "d": timedelta(days=amount), "w": timedelta(weeks=amount)}[unit]
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        raise InvalidInput(f"{option} must look like 7d, 24h, 2w or 2026-11-01, got {value!r}") from None


def utc_stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _embedder(service):
    try:
        return service.retriever().embedder
    except QAError:
        return service._embedder  # no index yet: the injected embedder, or none


def cluster_questions(questions: list[str], embedder, similarity: float = SIMILARITY) -> list[list[int]]:
    """Indices of ``questions`` grouped by meaning; the most frequent wording leads each group."""
    keys = [normalise(q) for q in questions]
    frequency = Counter(keys)
    distinct = sorted(frequency, key=lambda k: (-frequency[k], k))
    if embedder is not None and distinct:
        vectors = np.asarray(embedder.encode(distinct), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms == 0, 1, norms)
    else:
        vectors = None
    leaders: list[int] = []
    group_of: dict[str, int] = {}
    for position, key in enumerate(distinct):
        best, best_score = None, similarity
        if vectors is not None:
            for number, leader in enumerate(leaders):
                score = float(vectors[position] @ vectors[leader])
                if score >= best_score:
                    best, best_score = number, score
        if best is None:
            leaders.append(position)
            best = len(leaders) - 1
        group_of[key] = best
    groups: list[list[int]] = [[] for _ in leaders]
    for index, key in enumerate(keys):
        groups[group_of[key]].append(index)
    return sorted(groups, key=lambda g: (-len(g), g[0]))  # ties: first asked first


def build_report(service, since: str, threshold: float | None = None) -> dict:
    """The numbers behind the report, for the period starting ``since``."""
    start = parse_since(since)
    threshold = service.settings.threshold if threshold is None else threshold
    db = service.store.db
    queries = db.execute_returning_dicts("SELECT * FROM query_log WHERE at >= ? ORDER BY at", [utc_stamp(start)])
    feedback = db.execute_returning_dicts("SELECT * FROM feedback WHERE at >= ? ORDER BY at", [utc_stamp(start)])
    titles = {a["id"]: a["question"] for a in service.store.answers()}

    clusters = []
    for members in cluster_questions([q["question"] for q in queries], _embedder(service)):
        rows = [queries[i] for i in members]
        wordings = Counter(r["question"] for r in rows)
        routes = Counter(r["route"] for r in rows)
        latest = rows[-1]
        clusters.append({
            "question": wordings.most_common(1)[0][0],
            "count": len(rows),
            "wordings": [{"question": q, "count": n} for q, n in wordings.most_common(5)],
            "routes": dict(routes),
            "mean_confidence": round(sum(r["confidence"] for r in rows) / len(rows), 3),
            "unanswered": routes.get("expert", 0) * 2 >= len(rows),
            "latest_top_answer": latest["top_id"],
            "latest_top_title": titles.get(latest["top_id"], latest["top_id"]),
            "latest_route": latest["route"],
        })

    helpful = sum(1 for f in feedback if f["helpful"])
    answered = [q for q in queries if q["route"] == "answer"]
    negatives = Counter(f["answer_id"] for f in feedback if not f["helpful"])
    approved_since = db.execute_returning_dicts(
        "SELECT answer_id, version, by, at FROM answer_versions WHERE at >= ? AND change LIKE '%approved%' ORDER BY at",
        [utc_stamp(start)],
    )
    return {
        "since": utc_stamp(start),
        "until": utc_stamp(datetime.now(timezone.utc)),
        "questions": len(queries),
        "route_mix": dict(Counter(q["route"] for q in queries)),
        "confidence_histogram": [int(n) for n in np.histogram([q["confidence"] for q in queries], bins=10, range=(0, 1))[0]],
        "threshold": threshold,
        "clusters": clusters[:TOP],
        "unanswered_clusters": [c for c in clusters if c["unanswered"]][:TOP],
        "feedback": {
            "count": len(feedback),
            "helpful": helpful,
            "rate": round(len({f["query_id"] for f in feedback if f["query_id"]}) / len(answered), 3) if answered else None,
            "satisfaction": round(helpful / len(feedback), 3) if feedback else None,
        },
        "most_negative": [
            {"answer_id": answer_id, "title": titles.get(answer_id, answer_id), "negative": n}
            for answer_id, n in negatives.most_common(TOP)
        ],
        "approved_in_period": [
            {**row, "question": titles.get(row["answer_id"], "")} for row in approved_since
        ],
        "stale_answers": curation.stale_answers(service),
    }


def summary_text(report: dict) -> str:
    routes = ", ".join(f"{k} {v}" for k, v in sorted(report["route_mix"].items())) or "none"
    fb = report["feedback"]
    lines = [
        f"{report['questions']} questions from {report['since']} to {report['until']} (routes: {routes})",
        f"feedback: {fb['count']} ({_percent(fb['rate'])} of answered questions), satisfaction {_percent(fb['satisfaction'])}",
        "",
        "top questions (热点问题):",
    ]
    lines += [f"  {c['count']:>4}  {c['question']}  -> {c['latest_top_title'] or '(no answer)'}" for c in report["clusters"]]
    lines.append("unanswered clusters:")
    lines += [f"  {c['count']:>4}  {c['question']}" for c in report["unanswered_clusters"]] or ["  (none)"]
    lines.append("answers with the most negative feedback:")
    lines += [f"  {a['negative']:>4}  {a['answer_id']}  {a['title']}" for a in report["most_negative"]] or ["  (none)"]
    lines.append("answers approved in the period:")
    lines += [f"  {a['answer_id']} v{a['version']} by {a['by']}  {a['question']}" for a in report["approved_in_period"]] or ["  (none)"]
    lines.append("stale answers (cite superseded documents):")
    lines += [f"  {a['id']}  {a['question']}" for a in report["stale_answers"]] or ["  (none)"]
    return "\n".join(lines)


def _percent(value) -> str:
    return "n/a" if value is None else f"{value:.0%}"


# ---- HTML with charts ------------------------------------------------------------


def _chart(draw) -> str:
    """A PNG data URI. Labels stay ASCII: the server may have no CJK font."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3), dpi=100)
    axes = figure.subplots()
    draw(axes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def write_html(report: dict, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    e = html.escape
    routes = report["route_mix"]
    clusters = report["clusters"]

    def route_chart(ax):
        names = sorted(routes)
        ax.bar(names, [routes[n] for n in names], color="#4a7ab0")
        ax.set_title("Route mix")

    def confidence_chart(ax):
        ax.bar(np.arange(10) / 10 + 0.05, report["confidence_histogram"], width=0.09, color="#4a7ab0")
        ax.axvline(report["threshold"], color="#c0392b", linestyle="--", label="threshold")
        ax.set_title("Confidence distribution")
        ax.legend()

    def cluster_chart(ax):
        labels = [f"#{n}" for n in range(1, len(clusters) + 1)]
        ax.bar(labels, [c["count"] for c in clusters], color=["#c0392b" if c["unanswered"] else "#4a7ab0" for c in clusters])
        ax.set_title("Top questions (red: mostly unanswered)")

    def table(headers, rows):
        head = "".join(f"<th>{e(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><tr>{head}</tr>{body or '<tr><td colspan=9>(none)</td></tr>'}</table>"

    fb = report["feedback"]
    parts = [
        "<!doctype html><html lang='zh'><meta charset='utf-8'><title>qa report</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}img{max-width:100%}</style>",
        f"<h1>热点问题与质量报告</h1><p>{e(report['since'])} — {e(report['until'])}: {report['questions']} questions; "
        f"feedback {fb['count']} ({_percent(fb['rate'])} of answered), satisfaction {_percent(fb['satisfaction'])}</p>",
    ]
    if report["questions"]:
        parts += [f"<img alt='route mix' src='{_chart(route_chart)}'>",
                  f"<img alt='confidence' src='{_chart(confidence_chart)}'>",
                  f"<img alt='top questions' src='{_chart(cluster_chart)}'>"]
    parts += [
        "<h2>热点问题 (top questions)</h2>",
        table(["#", "question", "count", "routes", "mean confidence", "latest top answer"],
              [(n, c["question"], c["count"], c["routes"], c["mean_confidence"], c["latest_top_title"] or "")
               for n, c in enumerate(clusters, 1)]),
        "<h2>未解答 (unanswered clusters)</h2>",
        table(["question", "count", "wordings"],
              [(c["question"], c["count"], " / ".join(w["question"] for w in c["wordings"])) for c in report["unanswered_clusters"]]),
        "<h2>差评最多的答复 (most negative feedback)</h2>",
        table(["answer", "title", "not helpful"], [(a["answer_id"], a["title"], a["negative"]) for a in report["most_negative"]]),
        "<h2>本期审核通过 (approved in the period)</h2>",
        table(["answer", "question", "version", "by", "at"],
              [(a["answer_id"], a["question"], a["version"], a["by"], a["at"]) for a in report["approved_in_period"]]),
        "<h2>待复核 (stale answers)</h2>",
        table(["answer", "question", "why"], [(a["id"], a["question"], "; ".join(a["reasons"])) for a in report["stale_answers"]]),
        "</html>",
    ]
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text("\n".join(parts), "utf-8")
    scratch.replace(path)
    return path
