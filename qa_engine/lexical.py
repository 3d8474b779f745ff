"""Lexical retrieval: Okapi BM25 over jieba terms, with weighted query terms.

The index is a sparse passage-by-term matrix of BM25 term weights, so a query with
weights (its own words 1.0, synonym expansions less) is one sparse product.
"""

from __future__ import annotations

import json
import math
from array import array
from collections import Counter
from pathlib import Path

import numpy as np
from scipy import sparse

K1 = 1.2
B = 0.75


class BM25Index:
    def __init__(self, vocabulary: dict[str, int], idf: np.ndarray, average_length: float, matrix: sparse.csr_matrix):
        self.vocabulary = vocabulary
        self.idf = idf
        self.average_length = average_length
        self.matrix = matrix  # passages x terms, BM25 weights (idf included)
        self._by_term = matrix.T.tocsr()

    @classmethod
    def build(cls, passages_terms: list[list[str]]) -> "BM25Index":
        vocabulary: dict[str, int] = {}
        document_frequency: Counter[str] = Counter()
        for terms in passages_terms:
            document_frequency.update(set(terms))
        for term in sorted(document_frequency):
            vocabulary[term] = len(vocabulary)
        n = max(len(passages_terms), 1)
        idf = np.zeros(len(vocabulary), dtype=np.float32)
        for term, index in vocabulary.items():
            df = document_frequency[term]
            idf[index] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        average_length = sum(len(t) for t in passages_terms) / n or 1.0
        matrix = encode_passages(passages_terms, vocabulary, idf, average_length)
        return cls(vocabulary, idf, average_length, matrix)

    def query_vector(self, weighted_terms: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        indices, weights = [], []
        for term, weight in weighted_terms.items():
            index = self.vocabulary.get(term)
            if index is not None:
                indices.append(index)
                weights.append(weight)
        return np.array(indices, dtype=np.int64), np.array(weights, dtype=np.float32)

    def scores(self, weighted_terms: dict[str, float]) -> np.ndarray:
        """BM25 score of every passage for the weighted query terms."""
        indices, weights = self.query_vector(weighted_terms)
        if len(indices) == 0:
            return np.zeros(self.matrix.shape[0], dtype=np.float32)
        rows = self._by_term[indices]
        return np.asarray(rows.T @ weights, dtype=np.float32).ravel()

    def matched_terms(self, weighted_terms: dict[str, float], passage: int) -> list[str]:
        row = self.matrix.getrow(passage)
        present = set(row.indices.tolist())
        return [t for t in weighted_terms if self.vocabulary.get(t) in present]

    def save(self, folder: Path) -> None:
        sparse.save_npz(folder / "bm25_matrix.npz", self.matrix, compressed=False)  # zlib: slow to write and load
        np.save(folder / "bm25_idf.npy", self.idf)
        (folder / "bm25.json").write_text(
            json.dumps({"k1": K1, "b": B, "average_length": self.average_length, "vocabulary": self.vocabulary}, ensure_ascii=False),
            "utf-8",
        )

    @classmethod
    def load(cls, folder: Path) -> "BM25Index":
        meta = json.loads((folder / "bm25.json").read_text("utf-8"))
        matrix = sparse.load_npz(folder / "bm25_matrix.npz").tocsr()
        return cls(meta["vocabulary"], np.load(folder / "bm25_idf.npy"), meta["average_length"], matrix)


def encode_passages(
    passages_terms: list[list[str]], vocabulary: dict[str, int], idf: np.ndarray, average_length: float
) -> sparse.csr_matrix:
    """BM25 weights of passages against fixed statistics (also used for answers added later)."""
    # array('i'/'f') hold 4 bytes an entry; lists of Python ints and floats hold ~100 (6 GB at 1M passages).
    rows, cols, values = array("i"), array("i"), array("f")
    for row, terms in enumerate(passages_terms):
        length = len(terms)
        for term, tf in Counter(terms).items():
            index = vocabulary.get(term)
            if index is None:
                continue
            weight = idf[index] * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / average_length))
            rows.append(row)
            cols.append(index)
            values.append(weight)
    shape = (len(passages_terms), len(vocabulary))
    return sparse.csr_matrix(
        (np.frombuffer(values, dtype=np.float32), (np.frombuffer(rows, dtype=np.int32), np.frombuffer(cols, dtype=np.int32))),
        shape=shape,
    )
