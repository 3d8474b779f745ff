"""docs/BENCHMARKS.md's speed-and-scale sections and the plots, from the latest results."""

from __future__ import annotations

import json
from pathlib import Path

START = "<!-- speed-and-scale:start (written by bench/run.py; edit bench/report.py instead) -->"
END = "<!-- speed-and-scale:end -->"


def merge_results(path: Path, report: dict) -> dict:
    """Keep each size's latest measurement, so a quick run does not forget the big ones."""
    merged = json.loads(path.read_text("utf-8")) if path.exists() else {"scale": {}}
    merged["real"] = {k: v for k, v in report.items() if k != "scale"}
    for row in report["scale"]:
        merged["scale"][str(row["size"])] = row
    path.write_text(json.dumps(merged, ensure_ascii=False, indent=1), "utf-8")
    return merged


def _mib(value) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _num(value, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def markdown(merged: dict) -> str:
    real = merged["real"]
    rows = sorted(merged["scale"].values(), key=lambda r: r["size"])
    lines = [
        START,
        "## Speed and scale",
        "",
        f"Measured by `python bench/run.py` on {real['machine']['cpus']} CPUs, Python {real['machine']['python']}, "
        f"{real['machine']['measured_at']}. Latency is in-process `QAService.ask` (record=False), query "
        "embedding included, over the dev-set questions; the baseline is plain jieba + bm25s "
        "(`qa_engine/baseline.py`) over the same passages, measured in the same run. Ratios are engine ÷ baseline: "
        "these machines are shared and noisy, the ratios travel better than the milliseconds.",
        "",
        "### Ask latency on the real corpus",
        "",
        "| passages | ask p50 ms | ask p99 ms | baseline p50 ms | baseline p99 ms | ratio p50 | ratio p99 | cold start s | target |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {real['passages']:,} | {real['ask_p50_ms']:.2f} | {real['ask_p99_ms']:.2f} | {real['baseline_p50_ms']:.2f} | "
        f"{real['baseline_p99_ms']:.2f} | {real['ratio_p50']} | {real['ratio_p99']} | {real['cold_start_s']:.2f} | "
        "p50 ≤ 5, p99 ≤ 20, cold ≤ 2 |",
        "",
        f"Cold start is a fresh `python` process that imports the service, loads the index and answers one "
        f"question, interpreter start included ({real['cold_start_in_process_s']:.2f} s of it after the interpreter started). "
        f"Heavy modules imported on that path: {', '.join(real['cold_start_heavy_imports']) or 'none (no torch)'}.",
        "",
        "Where an ask's time goes on the real corpus (cProfile, own time per ask):",
        "",
        "| function | own ms/ask | cumulative ms/ask |",
        "|---|---:|---:|",
        *[f"| `{h['function']}` | {h['own_ms_per_ask']:.3f} | {h['cumulative_ms_per_ask']:.3f} |" for h in real["hot_spots"]],
        "",
    ]
    if rows:
        lines += [
            "### Scale: synthetic corpora",
            "",
            "Passages recombined and perturbed from the real articles (`bench/synthetic.py`). Build time is measured "
            "for the index (BM25 matrix, vectors, FAISS, writing); tokenising the text is estimated from a "
            "2,000-passage sample of the same corpus, since the synthetic passages reuse the real articles' tokens. "
            "Peak memory is each step's own process (`ru_maxrss`).",
            "",
            "| passages | dense | build s (measured + est. tokenising) | index MiB | build peak MiB | serve peak MiB | "
            "ask p50 ms | ask p99 ms | baseline p50 ms | baseline p99 ms | ratio p50 | ratio p99 | recall@10 | load s |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            if "error" in r and "ask_p50_ms" not in r:
                lines.append(f"| {r['size']:,} | {r.get('dense_kind', '–')} | {r['error']} |" + " |" * 11)
                continue
            recall = r.get("recall_at_10", {}).get("own", {}).get("recall")
            lines.append(
                f"| {r['size']:,} | {r.get('dense_kind')} | {_num(r.get('build_measured_s'))} + {_num(r.get('tokenise_estimated_s', 0) + r.get('embed_tokenise_estimated_s', 0), 0)} | "
                f"{_num(r.get('index_bytes', 0) / 2**20, 0)} | {_mib(r.get('build_peak_mib'))} | {_mib(r.get('serve_peak_mib'))} | "
                f"{_num(r.get('ask_p50_ms'), 2)} | {_num(r.get('ask_p99_ms'), 2)} | {_num(r.get('baseline_p50_ms'), 2)} | "
                f"{_num(r.get('baseline_p99_ms'), 2)} | {r.get('ratio_p50', '–')} | {r.get('ratio_p99', '–')} | "
                f"{_num(recall, 3)} | {_num(r.get('load_and_first_ask_s'), 1)} |"
            )
        lines += ["", "![ask latency against corpus size](img/latency.png)", "", "![peak memory against corpus size](img/memory.png)", ""]
        for r in rows:
            probes = {k: v for k, v in r.get("recall_at_10", {}).items() if k.startswith("nprobe_")}
            if probes:
                lines += [f"IVF at {r['size']:,} passages ({r['recall_at_10'].get('nprobe')} probes in use): "
                          + "; ".join(f"{k.split('_')[1]} probes → recall@10 {v['recall']:.3f}, search {v['search_p50_ms']:.2f} ms"
                                      for k, v in probes.items()), ""]
        lines += ["Hot spots per size (cProfile, own ms per ask):", ""]
        for r in rows:
            if r.get("hot_spots"):
                spots = ", ".join(f"`{h['function']}` {h['own_ms_per_ask']:.2f}" for h in r["hot_spots"][:6])
                lines.append(f"- {r['size']:,}: {spots}")
        lines.append("")
    lines += [
        "Reading these numbers:",
        "",
        "- The machines are shared: a load average of 4-5 on 2 cores during a run makes every figure 2-3x "
        "slower than on a quiet one (earlier, quieter: ask p50 6.5 ms over 5 questions, `qa ask` cold start 2.5 s). "
        "Compare the ratios.",
        "- recall@10 is measured against exact top 10 by id. Synthetic passages recombine 1,183 articles, so "
        "many are duplicates with equal scores, and exact search itself breaks ties arbitrarily: the flat "
        "(exact) index scores only ~0.94 at 100k on this measure. Read IVF recall against that ceiling; a "
        "tie-aware measure (approximate 10th score ≥ exact 10th score) is the next step.",
        "- Build peak memory at 1M is the benchmark's build process, which also holds the tokenised pieces "
        "and an exact-search matrix for recall.",
        "- At 1M the time goes to the BM25 product over long posting lists, `argpartition` over all scores "
        "and the IVF search; the targets there (p99 ≤ 50 ms, recall@10 ≥ 0.95, build ≤ 20 min, peak ≤ 4 GiB) "
        "are not met yet.",
        "",
        END,
    ]
    return "\n".join(lines)


def write_docs(merged: dict, docs: Path) -> None:
    docs.mkdir(exist_ok=True)
    target = docs / "BENCHMARKS.md"
    section = markdown(merged)
    text = target.read_text("utf-8") if target.exists() else "# Benchmarks\n\n"
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    target.write_text(text, "utf-8")
    rows = sorted((r for r in merged["scale"].values() if "ask_p50_ms" in r), key=lambda r: r["size"])
    if rows:
        plot(merged["real"], rows, docs / "img")


def plot(real: dict, rows: list[dict], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    sizes = [real["passages"]] + [r["size"] for r in rows]
    series = [real] + rows
    figure, axes = plt.subplots(figsize=(6, 4))
    for key, label, style in (("ask_p50_ms", "engine p50", "o-"), ("ask_p99_ms", "engine p99", "o--"),
                              ("baseline_p50_ms", "jieba+bm25s p50", "s-"), ("baseline_p99_ms", "jieba+bm25s p99", "s--")):
        axes.plot(sizes, [r.get(key) for r in series], style, label=label)
    axes.axhline(50, color="grey", linewidth=0.8, linestyle=":", label="1M p99 target (50 ms)")
    axes.set(xscale="log", yscale="log", xlabel="passages", ylabel="ms per ask", title="Ask latency against corpus size")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(folder / "latency.png", dpi=110)
    plt.close(figure)
    figure, axes = plt.subplots(figsize=(6, 4))
    for key, label, style in (("build_peak_mib", "build peak", "o-"), ("serve_peak_mib", "serve peak", "s-"),
                              ("baseline_peak_mib", "jieba+bm25s peak", "^-")):
        axes.plot([r["size"] for r in rows], [r.get(key) for r in rows], style, label=label)
    axes.axhline(4096, color="grey", linewidth=0.8, linestyle=":", label="1M target (4 GiB)")
    axes.set(xscale="log", yscale="log", xlabel="passages", ylabel="MiB", title="Peak memory against corpus size")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(folder / "memory.png", dpi=110)
    plt.close(figure)
