"""Fit the confidence model's weights on our own labelled questions.

Usage (QA_HOME: an index built over ../shared/corpus/laws only):

    python bench/calibrate.py [--gold FILE ...]   # default: every bench/questions/*.jsonl

The model says how likely the first article is right for a question the knowledge base
answers, so it is fitted on the answerable questions only; the confidence is that probability
times the scope model's (qa_engine/scope.py), which keeps out-of-scope questions from the
answer route. Prints the fitted weights (to copy into ``qa_engine.retrieval.Weights``) and the
precision, coverage and out-of-scope abstention of the confidence at a few thresholds (pick
``QA_THRESHOLD`` there). The dev set is not used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa_engine.config import Settings  # noqa: E402
from qa_engine.evaluation import first_hit_rank, load_gold  # noqa: E402
from qa_engine.retrieval import CONFIDENCE_FEATURES  # noqa: E402
from qa_engine.service import QAService  # noqa: E402


def collect(service: QAService, items: list[dict]) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Features, whether the first article is right, categories and in-scope probabilities."""
    retriever = service.retriever()
    rows, labels, categories, in_scope = [], [], [], []
    for item in items:
        if item["category"] == "complaint":
            continue  # routed by intent, not by confidence
        result = retriever.search(item["question"], item.get("as_of") or service.today(), 10)
        answers = [
            {"rank": rank, "citations": [{"doc": hit.key.split("#")[0], "article": hit.key.split("#")[1]}]}
            for rank, hit in enumerate(result.hits, 1)
            if hit.kind == "article"
        ]
        rank = first_hit_rank(answers, item["expected"]) if item["expected"] else None
        rows.append([result.features[name] for name in CONFIDENCE_FEATURES])
        labels.append(1 if rank == 1 else 0)
        categories.append(item["category"])
        in_scope.append(result.features["in_scope"])
    return np.array(rows), np.array(labels), categories, np.array(in_scope)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gold", nargs="+", type=Path,
                        default=sorted((ROOT / "bench/questions").glob("*.jsonl")))
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression

    service = QAService(Settings.from_env())
    items = [item for path in args.gold for item in load_gold(path)]
    X, y, categories, in_scope = collect(service, items)
    categories = np.array(categories)
    answerable = np.isin(categories, ["policy", "superseded"])
    model = LogisticRegression(C=100.0, max_iter=1000).fit(X[answerable], y[answerable])
    print("bias", round(float(model.intercept_[0]), 3))
    for name, weight in zip(CONFIDENCE_FEATURES, model.coef_[0]):
        print(name, round(float(weight), 3))
    confidence = model.predict_proba(X)[:, 1] * in_scope
    for threshold in np.arange(0.4, 0.851, 0.05).round(2):
        routed = confidence >= threshold
        precision = y[routed].sum() / max(routed.sum(), 1)
        coverage = routed[answerable].mean()
        abstained = (~routed[categories == "out_of_scope"]).mean()
        print(f"threshold {threshold}: precision {precision:.3f} coverage {coverage:.3f} out-of-scope abstained {abstained:.3f}")


if __name__ == "__main__":
    main()
