"""When each document version is in force, derived from the texts, with curator overrides."""

from __future__ import annotations

import re
from dataclasses import dataclass

IN_FORCE = "in_force"
SUPERSEDED = "superseded"
NOT_YET_IN_FORCE = "not_yet_in_force"


@dataclass(frozen=True)
class DocumentInfo:
    doc: str
    title: str
    short_title: str
    version_date: str
    effective_from: str
    repeals: tuple[str, ...]


@dataclass(frozen=True)
class Validity:
    effective_from: str
    effective_to: str | None  # first day it no longer applies
    superseded_by: str | None

    def status(self, as_of: str) -> str:
        if as_of < self.effective_from:
            return NOT_YET_IN_FORCE
        if self.effective_to is not None and as_of >= self.effective_to:
            return SUPERSEDED
        return IN_FORCE


def derive_validity(documents: list[DocumentInfo], overrides: dict[str, dict] | None = None) -> dict[str, Validity]:
    """Effective dates per document id.

    A version ends when a later version of the same short title takes effect, or when a
    document that says 《title》……同时废止 takes effect. Overrides (``{"doc": {"effective_from":
    ..., "effective_to": ...}}``) win over what the texts say.
    """
    overrides = overrides or {}
    starts = {d.doc: overrides.get(d.doc, {}).get("effective_from") or d.effective_from for d in documents}
    by_title: dict[str, list[DocumentInfo]] = {}
    for d in documents:
        by_title.setdefault(comparable_title(d.title), []).append(d)

    ends: dict[str, tuple[str, str]] = {}

    def end(doc: str, day: str, by: str) -> None:
        if doc != by and (doc not in ends or day < ends[doc][0]):
            ends[doc] = (day, by)

    for d in documents:
        for other in documents:
            if other.short_title == d.short_title and other.version_date > d.version_date:
                end(d.doc, starts[other.doc], other.doc)
        for title in d.repeals:
            for repealed in by_title.get(comparable_title(title), []):
                if repealed.title != d.title and repealed.version_date < starts[d.doc]:
                    end(repealed.doc, starts[d.doc], d.doc)

    result = {}
    for d in documents:
        override = overrides.get(d.doc, {})
        day, by = ends.get(d.doc, (None, None))
        if override.get("effective_to"):
            day, by = override["effective_to"], by
        result[d.doc] = Validity(starts[d.doc], day, by)
    return result


def comparable_title(title: str) -> str:
    """Titles as texts quote them vary in punctuation: 偷税、抗税 vs 偷税抗税."""
    return re.sub(r"[\s、，,·《》〈〉()（）]", "", title)
