"""Lexical retrieval: Okapi BM25 over jieba terms, with weighted query terms.

The index keeps, for each term, its posting list: the passages it occurs in (ascending) and
its BM25 weight in each (idf included). A query with weights (its own words 1.0, synonym
expansions less) scores a passage as the weighted sum of its terms' weights.

``rank`` gives the best passages, in the order sorting ``scores`` gives, without sorting or
partitioning every passage's score.
"""

from __future__ import annotations

import json
import math
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

K1 = 1.2
B = 0.75
# ``rank`` takes its score floor from every FLOOR_STRIDE-th passage.
FLOOR_STRIDE = 8


@dataclass
class Ranking:
    """The best passages for a question (``ids``, best first, and their ``scores``) and the
    score of every passage, to look up others (``score_of``)."""

    ids: np.ndarray
    scores: np.ndarray
    all_scores: np.ndarray

    def score_of(self, passages: np.ndarray) -> np.ndarray:
        return self.all_scores[np.asarray(passages, dtype=np.int64)]


class BM25Index:
    def __init__(self, vocabulary: dict[str, int], idf: np.ndarray, average_length: float, postings: sparse.csr_matrix):
        """``postings``: terms x passages, BM25 weights, passages ascending within each term."""
        self.vocabulary = vocabulary
        self.idf = idf
        self.average_length = average_length
        postings.sort_indices()
        self.postings = postings
        self.passages = postings.shape[1]

    @classmethod
    def build(cls, passages_terms: list[list[str]]) -> "BM25Index":
        """The index of passages given as lists of terms, all at once (``PostingsBuilder`` takes
        them a chunk at a time, as a large build does)."""
        vocabulary: dict[str, int] = {}
        term_ids = [vocabulary.setdefault(term, len(vocabulary)) for terms in passages_terms for term in terms]
        builder = PostingsBuilder()
        builder.add(list(vocabulary), np.array(term_ids, dtype=np.int64), np.array([len(t) for t in passages_terms]))
        return builder.finish()

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
        return weighted_row_sum(self.postings, indices, weights)

    def rank(self, weighted_terms: dict[str, float], k: int) -> "Ranking":
        """Every passage's score, and the ``k`` best with a positive score, best first (equal
        scores by passage number).

        The best ``k`` are picked without partitioning every passage's score: the k-th best
        score of every FLOOR_STRIDE-th passage is a floor at least ``k`` passages reach, and
        only the passages at or above it are sorted.
        """
        scores = self.scores(weighted_terms)
        sample = scores[::FLOOR_STRIDE]
        floor = float(np.partition(sample, len(sample) - k)[len(sample) - k]) if 0 < k <= len(sample) else 0.0
        chosen = np.flatnonzero(scores >= floor) if floor > 0 else np.flatnonzero(scores > 0)
        best = chosen[np.lexsort((chosen, -scores[chosen]))[: max(k, 0)]]
        return Ranking(best, scores[best], scores)

    def matched_terms(self, weighted_terms: dict[str, float], passage: int) -> list[str]:
        return self.matched_terms_of(weighted_terms, [passage])[0]

    def matched_terms_of(self, weighted_terms: dict[str, float], passages: list[int]) -> list[list[str]]:
        """For each passage, the query terms it contains (one look-up per term for all of them)."""
        postings = self.postings
        wanted = np.asarray(passages, dtype=np.int64)
        matched: list[list[str]] = [[] for _ in passages]
        for term in weighted_terms:
            index = self.vocabulary.get(term)
            if index is None or len(wanted) == 0:
                continue
            listed = postings.indices[postings.indptr[index] : postings.indptr[index + 1]]
            if len(listed) == 0:
                continue
            at = np.minimum(np.searchsorted(listed, wanted), len(listed) - 1)
            for number in np.flatnonzero(listed[at] == wanted):
                matched[number].append(term)
        return matched

    def save(self, folder: Path) -> None:
        sparse.save_npz(folder / "bm25_postings.npz", self.postings, compressed=False)  # zlib: slow to write and load
        np.save(folder / "bm25_idf.npy", self.idf)
        (folder / "bm25.json").write_text(
            json.dumps({"k1": K1, "b": B, "average_length": self.average_length, "vocabulary": self.vocabulary}, ensure_ascii=False),
            "utf-8",
        )

    @classmethod
    def load(cls, folder: Path) -> "BM25Index":
        meta = json.loads((folder / "bm25.json").read_text("utf-8"))
        with open(folder / "bm25_postings.npz", "rb") as file:  # closed even when the file is damaged
            postings = sparse.load_npz(file).tocsr()
        return cls(meta["vocabulary"], np.load(folder / "bm25_idf.npy"), meta["average_length"], postings)


class PostingsBuilder:
    """Builds a ``BM25Index`` from passages given a chunk at a time, for corpora too large to
    hold as lists of terms (a million passages): each chunk is kept as compact posting lists of
    term counts, and ``finish`` writes the BM25 weights into one array per field, chunk by chunk.
    The weights are bit for bit those ``encode_passages`` gives the same terms (same float
    operations in the same order), so a build streamed in chunks answers exactly as one made at once."""

    def __init__(self):
        self.terms: dict[str, int] = {}  # term -> id in order of first sight
        self._chunks: list[tuple[int, sparse.csr_matrix]] = []  # (first passage, terms x passages counts)
        self._lengths: list[np.ndarray] = []
        self.passages = 0

    def add(self, vocabulary: list[str], term_ids: np.ndarray, lengths: np.ndarray) -> None:
        """Append passages: ``term_ids`` index ``vocabulary`` (the chunk's own) and are the
        passages' terms one after another; ``lengths`` is how many terms each passage has."""
        to_global = np.fromiter((self.terms.setdefault(t, len(self.terms)) for t in vocabulary), dtype=np.int64,
                                count=len(vocabulary))
        lengths = np.asarray(lengths, dtype=np.int64)
        owners = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
        columns = to_global[np.asarray(term_ids, dtype=np.int64)] if len(term_ids) else np.zeros(0, dtype=np.int64)
        counts = sparse.csr_matrix((np.ones(len(columns), dtype=np.float32), (columns, owners)),
                                   shape=(len(self.terms), len(lengths)))
        counts.sum_duplicates()  # also sorts each term's passages
        counts.data = np.minimum(counts.data, np.iinfo(np.uint16).max).astype(np.uint16)  # half the bytes
        self._chunks.append((self.passages, counts))
        self._lengths.append(lengths)
        self.passages += len(lengths)

    def finish(self) -> BM25Index:
        vocabulary_size, n = len(self.terms), self.passages
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, dtype=np.int64)
        document_frequency = np.zeros(vocabulary_size, dtype=np.int64)
        for _, counts in self._chunks:
            document_frequency[: counts.shape[0]] += np.diff(counts.indptr)
        ordered = sorted(self.terms, key=self.terms.__getitem__)  # id -> term
        by_name = sorted(range(vocabulary_size), key=ordered.__getitem__)  # terms are numbered in sorted order
        new_id = np.empty(vocabulary_size, dtype=np.int64)
        new_id[by_name] = np.arange(vocabulary_size)
        df = document_frequency[by_name]
        passages = max(n, 1)
        idf = np.array([math.log(1 + (passages - d + 0.5) / (d + 0.5)) for d in df.tolist()], dtype=np.float32)
        average_length = float(lengths.sum()) / passages or 1.0
        indptr = np.concatenate([[0], np.cumsum(df)])
        data = np.empty(indptr[-1], dtype=np.float32)
        indices = np.empty(indptr[-1], dtype=np.int32)
        filled = np.zeros(vocabulary_size, dtype=np.int64)  # by new id
        while self._chunks:  # each chunk is freed once written
            first, counts = self._chunks.pop(0)
            per_term = np.diff(counts.indptr)
            term = new_id[np.repeat(np.arange(counts.shape[0]), per_term)]
            within = np.arange(len(counts.data)) - np.repeat(counts.indptr[:-1], per_term)
            at = indptr[term] + filled[term] + within
            passage = counts.indices.astype(np.int64) + first
            data[at] = _weights(idf[term], counts.data, lengths[passage], average_length)
            indices[at] = passage
            filled[new_id[: counts.shape[0]]] += per_term
            del counts, term, within, at, passage
        self._lengths = []
        postings = sparse.csr_matrix((data, indices, indptr), shape=(vocabulary_size, n))
        return BM25Index({term: i for i, term in enumerate(ordered[j] for j in by_name)}, idf, average_length, postings)


# Below this many posting entries a query is summed with numpy (scipy's row selection costs a
# fixed ~0.1 ms), above it with scipy (its C loop is 3x faster than numpy's on long lists).
SCIPY_FROM_ENTRIES = 30_000


def weighted_row_sum(matrix: sparse.csr_matrix, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``weights @ matrix[rows]`` in float32, rows added in the given order (so both ways give
    the same bits)."""
    starts = matrix.indptr[rows]
    lengths = matrix.indptr[rows + 1] - starts
    entries = int(lengths.sum())
    if entries > SCIPY_FROM_ENTRIES:
        return np.asarray(matrix[rows].T @ weights, dtype=np.float32)
    total = np.zeros(matrix.shape[1], dtype=np.float32)
    if entries:
        at = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(entries)
        np.add.at(total, matrix.indices[at], matrix.data[at] * np.repeat(weights, lengths))
    return total


def _weights(idf: np.ndarray, tf: np.ndarray, lengths: np.ndarray, average_length: float) -> np.ndarray:
    """BM25 weights of term occurrences, computed as ``encode_passages`` computes each one in
    Python (float32 numerator, float64 length norm rounded to float32): the same bits."""
    numerator = idf * tf.astype(np.float32) * np.float32(K1 + 1)
    norm = tf.astype(np.float64) + K1 * (1 - B + B * lengths.astype(np.float64) / average_length)
    return numerator / norm.astype(np.float32)


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
