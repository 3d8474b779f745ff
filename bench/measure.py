"""Timing helpers shared by the quick run and the scale workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEV_SET = ROOT.parent / "shared" / "eval" / "dev.jsonl"
# Used where the shared dev set is absent (a fresh clone): typical hotline questions.
FALLBACK_QUESTIONS = [
    "年终奖怎么交个税",
    "小规模纳税人增值税起征点是多少",
    "个人出租住房要交哪些税",
    "企业所得税的税率是多少",
    "发票丢了怎么办",
    "子女教育专项附加扣除每月多少钱",
    "公司亏损可以往后结转几年",
    "卖二手房要交增值税吗",
    "印花税的计税依据是什么",
    "车辆购置税税率是多少",
]


def questions_path() -> Path:
    """The question set the benchmarks time: $QA_BENCH_QUESTIONS, else the dev set beside the repo."""
    return Path(os.environ.get("QA_BENCH_QUESTIONS", DEV_SET))


def load_questions(path: Path | None = None) -> list[dict]:
    """The dev set's questions (with their as-of dates), or the fallback list."""
    path = path or questions_path()
    if path.exists():
        rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
        return [{"question": r["question"], "as_of": r.get("as_of")} for r in rows]
    print(f"warning: no {path}: timing the {len(FALLBACK_QUESTIONS)} built-in questions instead "
          "(set QA_BENCH_QUESTIONS to a question set)", file=sys.stderr, flush=True)
    return [{"question": q, "as_of": None} for q in FALLBACK_QUESTIONS]


def timed_asks(ask, questions: list[dict], rounds: int) -> list[float]:
    """Milliseconds per call of ``ask(question, as_of)``, over every question, ``rounds`` times."""
    elapsed = []
    for _ in range(rounds):
        for q in questions:
            start = time.perf_counter()
            ask(q["question"], q.get("as_of"))
            elapsed.append((time.perf_counter() - start) * 1000)
    return elapsed


def percentiles(milliseconds: list[float], prefix: str) -> dict:
    values = np.asarray(milliseconds)
    return {
        f"{prefix}_p50_ms": round(float(np.percentile(values, 50)), 3),
        f"{prefix}_p99_ms": round(float(np.percentile(values, 99)), 3),
        f"{prefix}_mean_ms": round(float(values.mean()), 3),
        f"{prefix}_calls": len(values),
    }


COLD_START = """
import sys, time
start = time.perf_counter()
from qa_engine.service import QAService
service = QAService()
service.ask(sys.argv[1], record=False)
print(time.perf_counter() - start, " ".join(m for m in ("torch", "sentence_transformers") if m in sys.modules))
"""


def cold_start(question: str, runs: int = 3) -> dict:
    """A fresh interpreter loads the service and answers one question: wall time of the whole
    process (interpreter start included), and the part after ``python`` started."""
    walls, inside = [], []
    heavy = ""
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", COLD_START, question], cwd=ROOT, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"cold start run failed:\n{done.stderr.strip()}")
        seconds, _, heavy = done.stdout.strip().partition(" ")
        inside.append(float(seconds))
    return {
        "cold_start_s": round(float(np.median(walls)), 3),
        "cold_start_in_process_s": round(float(np.median(inside)), 3),
        "cold_start_heavy_imports": heavy.split(),
    }


class ScaledBaseline:
    """``PlainBM25Baseline`` over terms already cut by plain jieba (token ids), so a million
    passages need not be re-tokenised; asking is the same: jieba on the question, bm25s."""

    def __init__(self, passages, tokens: np.ndarray, lengths: np.ndarray, vocabulary: list[str]):
        import logging

        import bm25s
        import jieba
        from bm25s.tokenization import Tokenized

        from qa_engine.baseline import PlainBM25Baseline

        jieba.setLogLevel(logging.WARNING)
        ends = np.cumsum(lengths)
        ids = [tokens[end - length : end].tolist() for end, length in zip(ends, lengths)]
        self._ask = PlainBM25Baseline.ask
        self._jieba = jieba
        self.passages = passages
        self.retriever = bm25s.BM25()
        self.retriever.index(Tokenized(ids=ids, vocab={t: i for i, t in enumerate(vocabulary)}), show_progress=False)

    def _tokens(self, text: str) -> list[str]:
        vocabulary = self.retriever.vocab_dict
        return [t for t in self._jieba.lcut(text) if t.strip() and t in vocabulary]

    def ask(self, question: str, as_of: str, top_k: int = 10) -> dict:
        return self._ask(self, question, as_of, top_k)
