"""Whether a question is one the knowledge base can answer at all.

Callers also ask the tax hotline about pensions, passports, a login that fails or the office's
opening hours; no article answers those, however close its words. A linear classifier over the
question's character 1–3-grams (hashed, so nothing but its weights is stored) is trained at build
time: in scope are the questions curators wrote for articles and approved answers, out of scope
the curated examples in ``corpus/dictionary/out_of_scope.txt``. Its probability scales the
confidence (an approved answer whose curated phrasing matches the question keeps its own).
"""

from __future__ import annotations

import zlib

import numpy as np
from scipy.sparse import csr_matrix

from .text import normalise

BUCKETS = 1 << 18
LONGEST_GRAM = 3


def gram_buckets(text: str) -> np.ndarray:
    """The distinct hashed buckets of a text's character 1–3-grams."""
    text = normalise(text)
    grams = {text[start:start + n] for n in range(1, LONGEST_GRAM + 1) for start in range(len(text) - n + 1)}
    return np.unique(np.array([zlib.crc32(g.encode()) % BUCKETS for g in grams], dtype=np.int64))


def gram_matrix(texts: list[str]) -> csr_matrix:
    """One row a text: its grams' buckets, each 1/sqrt(count) (rows of unit length)."""
    rows = [gram_buckets(text) for text in texts]
    values = np.concatenate([np.full(len(r), 1 / np.sqrt(max(len(r), 1))) for r in rows]) if rows else np.zeros(0)
    indptr = np.cumsum([0] + [len(r) for r in rows])
    columns = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    return csr_matrix((values, columns, indptr), shape=(len(texts), BUCKETS))


class ScopeModel:
    """The trained weights: one a bucket, then the intercept."""

    def __init__(self, weights: np.ndarray):
        self.weights = weights

    @classmethod
    def train(cls, in_scope: list[str], out_of_scope: list[str]) -> "ScopeModel":
        from sklearn.linear_model import LogisticRegression

        labels = np.array([1] * len(in_scope) + [0] * len(out_of_scope))
        model = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000)
        model.fit(gram_matrix(in_scope + out_of_scope), labels)
        return cls(np.append(model.coef_[0], model.intercept_[0]).astype(np.float32))

    def in_scope(self, question_grams: np.ndarray) -> float:
        """The probability that a question is one the knowledge base answers, from its grams (``gram_buckets``)."""
        logit = float(self.weights[question_grams].sum()) / np.sqrt(max(len(question_grams), 1)) + float(self.weights[-1])
        return float(1 / (1 + np.exp(-logit)))
