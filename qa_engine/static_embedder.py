"""A torch-free reader for static-embedding models (the offline corpus model is one).

A sentence-transformers ``StaticEmbedding`` model is a tokenizer and one table of token
vectors; a sentence is the mean of its tokens' vectors, L2-normalised. Importing torch and
sentence-transformers to compute that costs about 5 s of a cold start, so this module reads
the same two files (``tokenizer.json``, ``model.safetensors``) with ``tokenizers`` and numpy
and gives the same vectors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

STATIC_MODULE = "sentence_transformers.sentence_transformer.modules.static_embedding.StaticEmbedding"
LEGACY_STATIC_MODULE = "sentence_transformers.models.StaticEmbedding"


def is_static_model(folder: str | Path) -> bool:
    """True for a saved sentence-transformers model made of one StaticEmbedding module."""
    modules_file = Path(folder) / "modules.json"
    try:
        modules = json.loads(modules_file.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return (
        len(modules) == 1
        and modules[0].get("type") in (STATIC_MODULE, LEGACY_STATIC_MODULE)
        and modules[0].get("path", "") == ""
        and (Path(folder) / "tokenizer.json").exists()
        and (Path(folder) / "model.safetensors").exists()
    )


ENCODE_BATCH = 256  # texts: a few hundred tokens each, so tens of MiB of token vectors at a time


class StaticEmbedder:
    """Mean of token vectors, L2-normalised: what sentence-transformers computes for a static
    model, without torch. ``name`` stays the model path, so an index built with the
    sentence-transformers loader reads back with this one and vice versa."""

    def __init__(self, folder: str | Path):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.name = str(folder)
        self._tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self._weights = np.ascontiguousarray(load_file(str(Path(folder) / "model.safetensors"))["embedding.weight"], dtype=np.float32)
        self.dimension = int(self._weights.shape[1])

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        if len(texts) == 1:  # a question: encode_batch would hand it to a thread pool and wait
            return [self._tokenizer.encode(texts[0], add_special_tokens=False).ids]
        return [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text (a text with no tokens gives zeros).

        Texts are embedded ENCODE_BATCH at a time: averaging gathers every token's vector
        (1 KiB a token at 256 dimensions), so a whole corpus at once would need gigabytes.
        Each text's vector does not depend on the others in its batch."""
        texts = list(texts)
        if len(texts) == 1:  # a question
            return self._encode_one(texts[0])[None, :]
        if len(texts) <= ENCODE_BATCH:
            return self._encode_batch(texts)
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for first in range(0, len(texts), ENCODE_BATCH):
            vectors[first : first + ENCODE_BATCH] = self._encode_batch(texts[first : first + ENCODE_BATCH])
        return vectors

    def _encode_one(self, text: str) -> np.ndarray:
        """The vector of one text, as ``_encode_batch`` computes it, with a fifth of the numpy calls."""
        ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        if not ids:
            return np.zeros(self.dimension, dtype=np.float32)
        # each step rounds as the batch's does, so a question gets the same vector either way
        vector = (np.add.reduceat(self._weights[ids], [0], axis=0)[0] / np.float64(len(ids))).astype(np.float32)
        norm = np.sqrt(np.add.reduce(vector * vector))
        return vector / (norm if norm else 1)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        ids = self.token_ids(texts)
        vectors = np.zeros((len(ids), self.dimension), dtype=np.float32)
        lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
        if lengths.sum():
            flat = np.fromiter((token for row in ids for token in row), dtype=np.int64, count=int(lengths.sum()))
            owners = np.repeat(np.arange(len(ids)), lengths)
            _sum_rows(vectors, owners, self._weights[flat])
            vectors /= np.maximum(lengths, 1)[:, None]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)


def _sum_rows(out: np.ndarray, owners: np.ndarray, rows: np.ndarray) -> None:
    """out[owner] += row for sorted owners, with one reduceat instead of a slow np.add.at."""
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    out[owners[starts]] = np.add.reduceat(rows, starts, axis=0)


def load_embedder(name_or_path: str):
    """The embedder for a model: this torch-free reader for a local static model, else
    sentence-transformers (imported only then)."""
    if is_static_model(name_or_path):
        try:
            return StaticEmbedder(name_or_path)
        except Exception:  # tokenizers and safetensors raise bare Exceptions for a damaged file
            from .errors import IndexMismatch

            raise IndexMismatch(f"the embedding model {name_or_path} is damaged or incomplete: delete that folder and "
                                'run "qa build" again, which trains the model anew') from None
    import os

    from .dense import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(name_or_path, allow_download=os.environ.get("QA_ALLOW_DOWNLOAD") == "1")
