"""What the approved answers do to answer quality, in one run.

Three scratch homes over the same laws:

- laws only (what bench/quality.py measures);
- laws + the approved answers (by default the shipped corpus/answers/approved.jsonl);
- laws + the same answers without their alternative phrasings ("held out").

Our own labelled questions are asked of the first two. Each held-out alternative is asked of the
third, as a caller's own wording of a curated question. It counts as "right first" when the first
result is its answer or an article that answer cites, and as "auto-answered right" when it is
also routed to `answer`. Decisions about how answers are ranked are taken on these figures, not
on the dev set.

Examples:
    python bench/answers.py                      # tables on stdout (2.5 minutes on 2 cores)
    python bench/answers.py --home /tmp/a --json # keep the scratch homes (and trained models) for a rerun
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.quality import DEFAULT_LAWS, TOP_K, engine_ask, in_scratch_home, log, machine, new_service  # noqa: E402
from qa_engine import routing  # noqa: E402
from qa_engine.answer_files import read_rows, write_rows  # noqa: E402
from qa_engine.errors import InvalidInput  # noqa: E402
from qa_engine.evaluation import citation_matches, evaluate, load_gold  # noqa: E402

DEFAULT_ANSWERS = ROOT / "corpus" / "answers" / "approved.jsonl"
DEFAULT_GOLD = [ROOT / "bench" / "questions" / name for name in ("callers.jsonl", "language.jsonl", "routing.jsonl")]
LAWS_ONLY = "laws only"
WITH_ANSWERS = "laws + answers"
METRICS = ["hit@1", "hit@5", "precision", "coverage", "out_of_scope_abstained"]


def built_home(home: Path, laws: Path, answers: Path | None):
    """A scratch home with the laws (and the answers, if given) ingested and built."""
    service = new_service(home)
    report = service.ingest([laws] + ([answers] if answers else []))
    if report.errors:
        raise InvalidInput(f"{len(report.errors)} file(s) could not be read: {report.errors[0]}")
    service.build()
    return service


def held_out(answers: Path, folder: Path) -> tuple[Path, list[dict]]:
    """A copy of the answers file without alternative phrasings, and the phrasings taken out, each
    with its answer's question and citations."""
    rows, errors = read_rows(answers)
    if errors:
        raise InvalidInput(f"{answers} {errors[0]['error']}")
    phrasings = [{"question": alternative, "answer": row["question"], "citations": row["citations"]}
                 for _, row in rows for alternative in row.get("alternatives") or []]
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / f"without-alternatives{answers.suffix}"
    write_rows(copy, [{**row, "alternatives": []} for _, row in rows])
    return copy, phrasings


def ask_held_out(service, phrasings: list[dict]) -> dict:
    right_first = auto_answered = auto_answered_right = 0
    for phrasing in phrasings:
        response = service.ask(phrasing["question"], top_k=TOP_K, record=False)
        top = response["answers"][0] if response["answers"] else None
        if top is None:
            right = False
        elif top["kind"] == "approved":
            right = top["title"] == phrasing["answer"]
        else:
            right = any(citation_matches(top["citations"][0], cited) for cited in phrasing["citations"])
        right_first += right
        if response["route"] == routing.ANSWER:
            auto_answered += 1
            auto_answered_right += right
    return {"phrasings": len(phrasings), "right_first": right_first, "auto_answered": auto_answered,
            "auto_answered_right": auto_answered_right}


def run(laws: Path, answers: Path, gold_paths: list[Path], home: Path) -> dict:
    sets = {path.stem: load_gold(path) for path in gold_paths}
    log(f"{LAWS_ONLY}: ingesting {laws} and building ...")
    homes = {LAWS_ONLY: built_home(home / "laws-only", laws, None)}
    log(f"{WITH_ANSWERS}: ingesting {laws} and {answers} and building ...")
    homes[WITH_ANSWERS] = built_home(home / "with-answers", laws, answers)
    without, phrasings = held_out(answers, home / "held-out-files")
    log(f"held out: the same answers without their {len(phrasings)} alternative phrasings ...")
    held_out_home = built_home(home / "held-out", laws, without)
    results: dict = {"sets": {}}
    for set_name, items in sets.items():
        results["sets"][set_name] = {name: evaluate(items, engine_ask(service))["overall"] for name, service in homes.items()}
    results["held_out"] = ask_held_out(held_out_home, phrasings)
    return results


def tables(results: dict) -> str:
    lines = ["| set | home | " + " | ".join(METRICS) + " |", "|---|---|" + "---:|" * len(METRICS)]
    for set_name, per_home in results["sets"].items():
        for name, overall in per_home.items():
            answerable = overall["answerable"] > 0  # precision and coverage mean nothing without answerable items
            cells = ["-" if overall[m] is None or (m in ("precision", "coverage") and not answerable) else f"{overall[m]:.3f}"
                     for m in METRICS]
            lines.append(f"| {set_name} | {name} | " + " | ".join(cells) + " |")
    held = results["held_out"]
    lines.append("")
    lines.append(f"Held-out phrasings: {held['right_first']} of {held['phrasings']} right first; "
                 f"{held['auto_answered']} answered automatically, {held['auto_answered_right']} of them right.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--laws", type=Path, default=DEFAULT_LAWS, help=f"the law corpus (default {DEFAULT_LAWS})")
    parser.add_argument("--answers", type=Path, default=DEFAULT_ANSWERS,
                        help="approved answers (.jsonl, .csv or .xlsx; default: the shipped corpus/answers/approved.jsonl)")
    parser.add_argument("--gold", type=Path, nargs="+", default=DEFAULT_GOLD,
                        help="labelled question sets (JSONL), each reported separately (default: bench/questions)")
    parser.add_argument("--home", type=Path, help="scratch directory for the three homes (default: a temporary "
                                                  "directory, removed afterwards)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress goes to stderr)")
    args = parser.parse_args(argv)

    if not args.laws.is_dir():
        log(f"Error: no law corpus at {args.laws}: give --laws PATH (a folder of law .md files)")
        return 2
    for path in [args.answers, *args.gold]:
        if not path.is_file():
            log(f"Error: no such file: {path}")
            return 2
    started = machine()
    results = in_scratch_home(args.home, "qa-answers-", lambda home: run(args.laws, args.answers, args.gold, home))
    if results is None:
        return 2
    results["machine"] = started
    results["command"] = "python bench/answers.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    print(json.dumps(results, ensure_ascii=False) if args.json else tables(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
