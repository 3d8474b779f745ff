"""Synthetic corpora of any size, recombined and perturbed from the real articles.

Each real article is cut into units (its heading, then its sentences). Every unit is
tokenised once, for the engine (dictionary jieba), the baseline (plain jieba) and the
embedding model. A synthetic passage takes a real article, keeps each sentence with
probability 0.8, mixes in up to two sentences of another article of the same law, and
shuffles their order; its tokens are the concatenation of its units' tokens. That makes a
million passages cheap to produce while the term statistics, lengths and vectors stay
those of real law text. (Joined sentences end in punctuation, so tokenising the joined text
would split at the same places, up to rare jieba merges across a boundary.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from qa_engine.corpus import short_title_of
from qa_engine.index import Passage

SENTENCE_END = re.compile(r"(?<=[。；！？])")
KEEP_SENTENCE = 0.8
MAX_BORROWED = 2


@dataclass
class Stream:
    """Token ids of every unit, flat, with each unit's start and length."""

    tokens: np.ndarray  # int32
    starts: np.ndarray  # int64, per unit
    lengths: np.ndarray  # int64, per unit
    vocabulary: list[str] | None = None  # id -> token (None for model token ids)

    @classmethod
    def from_lists(cls, units: list[list], vocabulary: list[str] | None = None) -> "Stream":
        lengths = np.array([len(u) for u in units], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        tokens = np.fromiter((t for u in units for t in u), dtype=np.int32, count=int(lengths.sum()))
        return cls(tokens, starts, lengths, vocabulary)

    def gather(self, unit_sequence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokens of the units in ``unit_sequence`` in order, and how many each unit gave."""
        lengths = self.lengths[unit_sequence]
        total = int(lengths.sum())
        offsets = np.repeat(self.starts[unit_sequence] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        return self.tokens[np.arange(total, dtype=np.int64) + offsets], lengths


@dataclass
class Pieces:
    """The real corpus cut into units, tokenised three ways."""

    passages: list[Passage]
    unit_text: list[str]
    heading_unit: np.ndarray  # per passage: its heading unit
    sentence_units: list[np.ndarray]  # per passage: its sentence units
    engine: Stream
    baseline: Stream
    model: Stream


def _interned_ids(units: list[list[str]]) -> tuple[list[list[int]], list[str]]:
    ids: dict[str, int] = {}
    return [[ids.setdefault(t, len(ids)) for t in unit] for unit in units], list(ids)


def cut_pieces(passages: list[Passage], analyzer, model_embedder) -> Pieces:
    """Cut the real passages into units and tokenise each once."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    unit_text: list[str] = []
    heading_unit, sentence_units = [], []
    for p in passages:
        heading_unit.append(len(unit_text))
        unit_text.append(f"{short_title_of(p.doc)} {p.chapter} ")
        sentences = [s for s in SENTENCE_END.split(p.text) if s.strip()] or [p.text]
        sentence_units.append(np.arange(len(unit_text), len(unit_text) + len(sentences)))
        unit_text.extend(sentences)
    engine_ids, engine_vocabulary = _interned_ids([analyzer.tokens(t) for t in unit_text])
    baseline_ids, baseline_vocabulary = _interned_ids([[w for w in jieba.lcut(t) if w.strip()] for t in unit_text])
    return Pieces(
        passages,
        unit_text,
        np.array(heading_unit, dtype=np.int64),
        sentence_units,
        Stream.from_lists(engine_ids, engine_vocabulary),
        Stream.from_lists(baseline_ids, baseline_vocabulary),
        Stream.from_lists(model_embedder.token_ids(unit_text)),
    )


@dataclass
class SyntheticCorpus:
    pieces: Pieces
    base: np.ndarray  # per synthetic passage: the real passage it derives from
    units: np.ndarray  # all synthetic passages' units, flat
    unit_counts: np.ndarray  # per synthetic passage

    def __len__(self) -> int:
        return len(self.base)

    def passage(self, number: int, offset: int) -> Passage:
        """The ``number``-th passage; ``offset`` is where its units start in ``units``."""
        real = self.pieces.passages[self.base[number]]
        units = self.units[offset + 1 : offset + self.unit_counts[number]]  # the heading is not text
        text = "".join(self.pieces.unit_text[u] for u in units)
        return Passage(f"{real.id}~{number}", real.doc, real.article, real.title, real.chapter, text,
                       real.effective_from, real.effective_to)

    def passages(self, first: int = 0, last: int | None = None):
        """The passages numbered ``first`` up to ``last`` (all by default), in order."""
        last = len(self) if last is None else last
        offset = int(self.unit_counts[:first].sum())
        for number in range(first, last):
            yield self.passage(number, offset)
            offset += int(self.unit_counts[number])

    def tokens(self, stream: Stream) -> tuple[np.ndarray, np.ndarray]:
        """Flat tokens of every synthetic passage in order, and each passage's token count."""
        tokens, unit_lengths = stream.gather(self.units)
        owners = np.repeat(np.arange(len(self)), self.unit_counts)
        return tokens, np.bincount(owners, weights=unit_lengths, minlength=len(self)).astype(np.int64)


def synthesise(pieces: Pieces, size: int, seed: int = 7) -> SyntheticCorpus:
    """``size`` passages recombined and perturbed from the real ones (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    by_doc: dict[str, list[int]] = {}
    for number, p in enumerate(pieces.passages):
        by_doc.setdefault(p.doc, []).append(number)
    bases = rng.integers(0, len(pieces.passages), size)
    units, counts = [], np.zeros(size, dtype=np.int64)
    for number, base in enumerate(bases):
        own = pieces.sentence_units[base]
        chosen = own[rng.random(len(own)) < KEEP_SENTENCE]
        siblings = by_doc[pieces.passages[base].doc]
        donor = pieces.sentence_units[siblings[rng.integers(len(siblings))]]
        borrowed = rng.choice(donor, size=min(len(donor), int(rng.integers(0, MAX_BORROWED + 1))), replace=False)
        sentences = np.concatenate([chosen, borrowed]) if len(chosen) or len(borrowed) else own
        sentences = rng.permutation(sentences)
        units.append(pieces.heading_unit[base : base + 1])
        units.append(sentences)
        counts[number] = 1 + len(sentences)
    return SyntheticCorpus(pieces, bases, np.concatenate(units).astype(np.int64), counts)
