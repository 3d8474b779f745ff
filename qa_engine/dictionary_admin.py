"""Curators' changes to the tax dictionary (jieba words) and synonym groups.

The shipped files in ``corpus/dictionary`` are the base; changes made with ``qa terms`` and
``qa synonyms`` live in SQLite, each a new version with who and when, and are merged over the
base when the service builds its text analyzer. They apply from the next ``qa build`` (the
index must be tokenised with the same dictionary as the questions).
"""

from __future__ import annotations

import json
import re

from . import curation
from .errors import InvalidInput, NotFound
from .store import utc_now
from .text import Dictionary, normalise

TERM, SYNONYM = "term", "synonym"
ACTIVE, REMOVED = "active", "removed"
DEFAULT_FREQ = 10000


def shipped(service) -> Dictionary:
    return Dictionary.load(service.settings.corpus_dir / "dictionary")


def _entries(store, kind: str) -> dict[str, tuple[dict, str]]:
    rows = store.db.execute_returning_dicts("SELECT key, data, status FROM dictionary_entries WHERE kind = ?", [kind])
    return {row["key"]: (json.loads(row["data"]), row["status"]) for row in rows}


def merged_dictionary(store, base: Dictionary) -> Dictionary:
    """The shipped dictionary with curators' additions and removals applied."""
    terms = dict(base.terms)
    for word, (data, status) in _entries(store, TERM).items():
        if status == ACTIVE:
            terms[word] = data["freq"]
        else:
            terms.pop(word, None)
    groups = {group[0]: group[1:] for group in base.synonyms}
    for canonical, (data, status) in _entries(store, SYNONYM).items():
        if status == ACTIVE:
            groups[canonical] = data["variants"]
        else:
            groups.pop(canonical, None)
    return Dictionary(
        terms=list(terms.items()),
        synonyms=[[canonical, *variants] for canonical, variants in groups.items()],
        stopwords=set(base.stopwords),
        question_types=list(base.question_types),
    )


def _save(store, kind: str, key: str, data: dict, status: str, change: str, by: str) -> int:
    now = utc_now()
    with store.transaction():
        row = store.db.execute("SELECT version FROM dictionary_entries WHERE kind = ? AND key = ?", [kind, key]).fetchone()
        version = (row[0] if row else 0) + 1
        record = {"kind": kind, "key": key, "data": json.dumps(data, ensure_ascii=False), "status": status}
        store.db["dictionary_entries"].upsert({**record, "version": version, "updated_at": now, "updated_by": by},
                                              pk=("kind", "key"))
        store.db["dictionary_versions"].insert({**record, "version": version, "change": change, "by": by, "at": now})
    return version


def _word(value, what: str) -> str:
    word = normalise(value) if isinstance(value, str) else ""
    if not word or re.search(r"\s", word) or len(word) > 20:
        raise InvalidInput(f"{what} must be one word of 1 to 20 characters without spaces, got {value!r}")
    return word


def _current(service) -> Dictionary:
    return merged_dictionary(service.store, shipped(service))


# ---- terms -------------------------------------------------------------------


def terms(service) -> list[dict]:
    curated = _entries(service.store, TERM)
    return [
        {"word": word, "freq": freq, "source": "curated" if word in curated else "shipped"}
        for word, freq in sorted(_current(service).terms)
    ]


def add_term(service, word: str, by: str, freq: int | None = None) -> dict:
    by = curation.require_identity(by)
    word = _word(word, "the term")
    freq = DEFAULT_FREQ if freq is None else freq
    if isinstance(freq, bool) or not isinstance(freq, int) or not 1 <= freq <= 10_000_000:
        raise InvalidInput("freq must be a whole number from 1 to 10000000")
    if dict(_current(service).terms).get(word) == freq:
        raise InvalidInput(f"{word} is already in the dictionary with freq {freq}")
    version = _save(service.store, TERM, word, {"freq": freq}, ACTIVE, f"added with freq {freq}", by)
    return {"word": word, "freq": freq, "version": version}


def remove_term(service, word: str, by: str) -> dict:
    by = curation.require_identity(by)
    word = _word(word, "the term")
    if word not in dict(_current(service).terms):
        raise NotFound(f'{word} is not in the dictionary: see "qa terms list"')
    version = _save(service.store, TERM, word, {"freq": None}, REMOVED, "removed", by)
    return {"word": word, "version": version}


# ---- synonyms ----------------------------------------------------------------


def synonyms(service) -> list[dict]:
    curated = _entries(service.store, SYNONYM)
    return [
        {"canonical": group[0], "variants": group[1:], "source": "curated" if group[0] in curated else "shipped"}
        for group in sorted(_current(service).synonyms)
    ]


def add_synonyms(service, canonical: str, variants: list[str], by: str) -> dict:
    """Add variants (callers' words) to the group of ``canonical`` (the law's wording)."""
    by = curation.require_identity(by)
    canonical = _word(canonical, "the canonical term")
    new = [_word(v, "a variant") for v in variants]
    if not new:
        raise InvalidInput("give at least one variant: qa synonyms add 个人所得税 个税")
    groups = {g[0]: g[1:] for g in _current(service).synonyms}
    group = list(groups.get(canonical, []))
    for variant in new:
        if variant == canonical:
            raise InvalidInput(f"{variant} is the canonical term itself")
        owner = next((c for c, vs in groups.items() if c != canonical and (variant in vs or variant == c)), None)
        if owner is not None:
            raise InvalidInput(f"{variant} already belongs to the group of {owner}: a variant belongs to one group")
    added = [v for v in dict.fromkeys(new) if v not in group]
    if not added:
        raise InvalidInput(f"the group of {canonical} already has {', '.join(new)}")
    group += added
    version = _save(service.store, SYNONYM, canonical, {"variants": group}, ACTIVE, "added " + ", ".join(added), by)
    return {"canonical": canonical, "variants": group, "version": version}


def remove_synonyms(service, canonical: str, variants: list[str], by: str) -> dict:
    """Remove variants from a group, or the whole group when no variant is given."""
    by = curation.require_identity(by)
    canonical = _word(canonical, "the canonical term")
    groups = {g[0]: g[1:] for g in _current(service).synonyms}
    if canonical not in groups:
        raise NotFound(f'there is no synonym group for {canonical}: see "qa synonyms list"')
    gone = [_word(v, "a variant") for v in variants]
    missing = [v for v in gone if v not in groups[canonical]]
    if missing:
        raise InvalidInput(f"the group of {canonical} has no {', '.join(missing)}")
    group = [v for v in groups[canonical] if v not in gone] if gone else []
    status = ACTIVE if group else REMOVED
    change = "removed " + ", ".join(gone) if gone else "removed the group"
    version = _save(service.store, SYNONYM, canonical, {"variants": group}, status, change, by)
    return {"canonical": canonical, "variants": group, "version": version}


def history(service, kind: str, key: str) -> list[dict]:
    key = _word(key, "the term")
    rows = service.store.db.execute_returning_dicts(
        "SELECT version, status, data, change, by, at FROM dictionary_versions WHERE kind = ? AND key = ? ORDER BY version",
        [kind, key],
    )
    if not rows:
        raise NotFound(f"no curated changes to {key}")
    return [{**row, "data": json.loads(row["data"])} for row in rows]
