"""BM25 index from token ids with numpy, for the synthetic corpora of the scale benchmark.

The synthetic passages reuse the real articles' tokens as ids, so the matrix is built from
arrays in chunks without re-tokenising text. The result equals ``BM25Index.build`` on the same
terms (``tests``: bench smoke test checks it).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from qa_engine.lexical import B, K1, BM25Index

CHUNK_PASSAGES = 100_000


def bm25_from_token_ids(tokens: np.ndarray, lengths: np.ndarray, vocabulary: list[str]) -> BM25Index:
    """``tokens``: every passage's term ids, flat; ``lengths``: terms per passage; ``vocabulary``: id -> term."""
    n = len(lengths)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    counts = []
    for first in range(0, n, CHUNK_PASSAGES):
        last = min(first + CHUNK_PASSAGES, n)
        chunk = tokens[starts[first] : ends[last - 1]] if last > first else tokens[:0]
        owners = np.repeat(np.arange(last - first, dtype=np.int32), lengths[first:last])
        counts.append(sparse.csr_matrix((np.ones(len(chunk), dtype=np.float32), (owners, chunk)), shape=(last - first, len(vocabulary))))
    tf = sparse.vstack(counts, format="csr") if counts else sparse.csr_matrix((0, len(vocabulary)), dtype=np.float32)
    tf.sum_duplicates()
    # BM25Index.build numbers the terms that occur in sorted order.
    document_frequency = np.bincount(tf.indices, minlength=len(vocabulary))
    present = np.flatnonzero(document_frequency)
    ordered = sorted(present.tolist(), key=vocabulary.__getitem__)
    new_id = np.full(len(vocabulary), -1, dtype=np.int64)
    new_id[ordered] = np.arange(len(ordered))
    df = document_frequency[ordered].astype(np.float64)
    passages = max(n, 1)
    idf = np.log(1 + (passages - df + 0.5) / (df + 0.5)).astype(np.float32)
    average_length = float(lengths.sum()) / passages or 1.0
    weights = np.empty(len(tf.data), dtype=np.float32)
    columns = np.empty(len(tf.indices), dtype=np.int32)
    for first in range(0, n, CHUNK_PASSAGES):  # in chunks: float64 temporaries stay small
        last = min(first + CHUNK_PASSAGES, n)
        span = slice(tf.indptr[first], tf.indptr[last])
        rows = np.repeat(np.arange(first, last), np.diff(tf.indptr[first : last + 1]))
        chunk_columns = new_id[tf.indices[span]]
        term_frequency = tf.data[span].astype(np.float64)
        norm = K1 * (1 - B + B * lengths[rows] / average_length)
        weights[span] = idf[chunk_columns] * term_frequency * (K1 + 1) / (term_frequency + norm)
        columns[span] = chunk_columns
    matrix = sparse.csr_matrix((weights, columns, tf.indptr), shape=(n, len(ordered)))
    matrix.sort_indices()
    return BM25Index({vocabulary[t]: i for i, t in enumerate(ordered)}, idf, average_length, matrix)
