"""The approved-answer lifecycle: draft -> approved -> retired, every change a new version.

Nothing is overwritten in place: each add, edit, approval and retirement writes a new row in
``answer_versions`` with who, when and what changed. Writers pass the version they read, so
two curators editing the same answer cannot lose an update: the second gets a Conflict.
The running service notices any change through ``store.answers_revision()``, so what
``qa ask`` returns changes within seconds, without a rebuild.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field

from .corpus import ApprovedAnswer, Citation, answer_from_dict
from .errors import InvalidInput, NotFound, QAError
from .store import answer_from_row

DRAFT, APPROVED, RETIRED = "draft", "approved", "retired"
STATUSES = (DRAFT, APPROVED, RETIRED)
FIELDS = ("question", "alternatives", "answer", "citations", "category", "effective_from", "effective_to")


def require_identity(by) -> str:
    """Every change names who made it."""
    if not isinstance(by, str) or not by.strip():
        raise InvalidInput("say who is making this change: pass --by NAME or set QA_USER")
    return by.strip()


def parse_answer(data: dict, where: str = "answer") -> ApprovedAnswer:
    """Check and normalise an answer given as a dict (the JSONL/API shape)."""
    answer = answer_from_dict(data, where)
    for alternative in answer.alternatives:
        if "|" in alternative:
            raise InvalidInput(f"{where}: alternative {alternative!r} contains '|', which separates alternatives in spreadsheets")
    return answer


def check_citations(service, citations: list[Citation], keep: frozenset = frozenset(), where: str = "answer") -> None:
    """Each citation must name an ingested article; a superseded one only if the answer already had it."""
    today = service.today()
    validity = service.validity()
    for c in citations:
        doc = service.resolve_doc(c.doc, today)
        if doc is None:
            raise InvalidInput(f'{where}: cites {c.doc} {c.article}, but there is no document {c.doc!r}: ingest it first ("qa ingest PATH")')
        if service.store.article(doc, c.article) is None:
            raise InvalidInput(f"{where}: cites {c.doc} {c.article}, but {doc} has no {c.article}")
        v = validity[doc]
        if v.status(today) == "superseded" and (c.doc, c.article) not in keep:
            replaced = f" by {v.superseded_by}" if v.superseded_by else ""
            raise InvalidInput(
                f"{where}: cites {c.doc} {c.article}, but {doc} was superseded on {v.effective_to}{replaced}: "
                "cite the version in force"
            )


def answer_dict(row: dict) -> dict:
    """The public shape of an answer (what show, list and export give)."""
    return {
        "id": row["id"],
        "status": row["status"],
        "version": row["version"],
        "question": row["question"],
        "alternatives": row["alternatives"],
        "answer": row["answer"],
        "citations": row["citations"],
        "category": row["category"] or "",
        "effective_from": row["effective_from"],
        "effective_to": row["effective_to"],
        "queue_id": row["queue_id"],
        "updated_at": row["updated_at"],
        "updated_by": row["updated_by"],
    }


def _content(answer: ApprovedAnswer) -> dict:
    return {
        "question": answer.question,
        "alternatives": list(answer.alternatives),
        "answer": answer.answer,
        "citations": [c.__dict__ for c in answer.citations],
        "category": answer.category or "",
        "effective_from": answer.effective_from,
        "effective_to": answer.effective_to,
    }


def _changed_fields(row: dict, answer: ApprovedAnswer) -> list[str]:
    old = _content(answer_from_row(row))
    new = _content(answer)
    return [name for name in FIELDS if old[name] != new[name]]


def get(service, answer_id: str) -> dict:
    row = service.store.answer(answer_id)
    if row is None:
        raise NotFound(f'no answer {answer_id}: see "qa answers list"')
    return row


def add(service, data: dict, by: str, queue_id: int | None = None) -> dict:
    """A new draft answer; its id comes from its question, so the same question cannot be added twice."""
    from .service import stable_answer_id

    by = require_identity(by)
    answer = parse_answer(data)
    check_citations(service, answer.citations)
    answer.id = stable_answer_id(answer.question)
    service.store.save_answer_version(answer, DRAFT, "created", by, queue_id=queue_id, expected_version=0)
    return answer_dict(get(service, answer.id))


def edit(service, answer_id: str, changes: dict, by: str, expected_version: int | None = None) -> dict:
    """A new version with ``changes`` applied; the status stays (an approved answer stays served)."""
    by = require_identity(by)
    row = get(service, answer_id)
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}; changeable: {', '.join(FIELDS)}")
    merged = {**_content(answer_from_row(row)), **{k: v for k, v in changes.items() if v is not None}}
    answer = parse_answer(merged)
    answer.id = answer_id
    changed = _changed_fields(row, answer)
    if not changed:
        raise InvalidInput(f"nothing to change: answer {answer_id} already says that")
    kept = frozenset((c["doc"], c["article"]) for c in row["citations"])
    check_citations(service, answer.citations, keep=kept)
    expected = row["version"] if expected_version is None else expected_version
    service.store.save_answer_version(answer, row["status"], "edited " + ", ".join(changed), by,
                                      queue_id=row["queue_id"], expected_version=expected)
    return answer_dict(get(service, answer_id))


def approve(service, answer_id: str, by: str, expected_version: int | None = None) -> dict:
    """Draft (or retired) -> approved; an approved answer flagged stale can be re-approved after review."""
    by = require_identity(by)
    row = get(service, answer_id)
    change = "approved"
    if row["status"] == APPROVED:
        if not stale_reasons(service, row):
            raise InvalidInput(f"answer {answer_id} is already approved")
        change = "reviewed and re-approved"
    answer = answer_from_row(row)
    check_citations(service, answer.citations, where=f"answer {answer_id}")
    expected = row["version"] if expected_version is None else expected_version
    service.store.save_answer_version(answer, APPROVED, change, by, queue_id=row["queue_id"], expected_version=expected)
    return answer_dict(get(service, answer_id))


def retire(service, answer_id: str, by: str, reason: str = "", expected_version: int | None = None) -> dict:
    """Stop serving an answer; its history stays."""
    by = require_identity(by)
    row = get(service, answer_id)
    if row["status"] == RETIRED:
        raise InvalidInput(f"answer {answer_id} is already retired")
    expected = row["version"] if expected_version is None else expected_version
    change = "retired" + (f": {reason.strip()}" if reason and reason.strip() else "")
    service.store.save_answer_version(answer_from_row(row), RETIRED, change, by, queue_id=row["queue_id"],
                                      expected_version=expected)
    return answer_dict(get(service, answer_id))


def show(service, answer_id: str) -> dict:
    row = get(service, answer_id)
    result = answer_dict(row)
    result["needs_review"] = stale_reasons(service, row) if row["status"] == APPROVED else []
    return result


def listing(service, status: str | None = None, category: str | None = None) -> list[dict]:
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
    rows = service.store.answers(status)
    if category:
        rows = [r for r in rows if (r["category"] or "") == category]
    stale = {item["id"] for item in stale_answers(service)}
    return [{**answer_dict(r), "needs_review": r["id"] in stale} for r in rows]


def history(service, answer_id: str) -> list[dict]:
    get(service, answer_id)
    rows = service.store.db.execute_returning_dicts(
        "SELECT version, change, by, at, data FROM answer_versions WHERE answer_id = ? ORDER BY version", [answer_id]
    )
    result = []
    for row in rows:
        data = json.loads(row.pop("data"))
        for key in ("alternatives", "citations"):
            data[key] = json.loads(data[key])
        result.append({**row, "status": data["status"], "data": {k: data[k] for k in FIELDS}})
    return result


# ---- stale answers --------------------------------------------------------------


def stale_reasons(service, row: dict, context: tuple | None = None) -> list[str]:
    """Why an approved answer needs review: a cited document superseded, or replaced by a newer
    version since the answer was last reviewed."""
    resolve, validity = context or _stale_context(service)
    today = service.today()
    reviewed = (row["updated_at"] or today)[:10]
    reasons = []
    for c in row["citations"]:
        now = resolve(c["doc"], today)
        cited = f"{c['doc']} {c['article']}"
        if now is None or service.store.article(now, c["article"]) is None:
            reasons.append(f"{cited} is no longer in the knowledge base")
            continue
        v = validity[now]
        if v.status(today) == "superseded":
            by = f" by {v.superseded_by}" if v.superseded_by else ""
            reasons.append(f"{cited}: {now} was superseded on {v.effective_to}{by}")
            continue
        then = resolve(c["doc"], reviewed)
        if then != now:
            reasons.append(f"{cited}: now means {now}, which replaced {then} after this answer was last reviewed")
    return reasons


def _stale_context(service) -> tuple:
    """Document resolution and validity, computed once for many answers."""
    return functools.lru_cache(maxsize=None)(service.resolve_doc), service.validity()


def stale_answers(service) -> list[dict]:
    """Approved answers citing a document that has since been superseded."""
    result = []
    context = _stale_context(service)
    for row in service.store.answers(APPROVED):
        reasons = stale_reasons(service, row, context)
        if reasons:
            result.append({"id": row["id"], "question": row["question"], "version": row["version"],
                           "updated_at": row["updated_at"], "reasons": reasons})
    return result


# ---- import and export ------------------------------------------------------------

EXPORT_COLUMNS = ["id", "status", "version", *FIELDS]


@dataclass
class ImportReport:
    ids: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)  # {"row": n, "error": "..."}
    applied: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def import_answers(
    service, rows: list[tuple[int, dict]], by: str, skip_invalid: bool = False, unreadable: list[dict] | None = None
) -> ImportReport:
    """Import numbered rows: new questions become drafts, rows with the id of an existing answer
    edit it (keeping its status). Every row is checked first; with any error (including the
    ``unreadable`` rows the file reader reported) nothing changes, unless ``skip_invalid``. Rows that carry a version must match the stored one (Conflict otherwise)."""
    from .service import stable_answer_id

    by = require_identity(by)
    report = ImportReport(errors=list(unreadable or []))
    plan = []
    seen: dict[str, int] = {}
    for number, data in rows:
        where = f"row {number}"
        try:
            if not isinstance(data, dict):
                raise InvalidInput(f"{where}: expected an object with question, answer, citations")
            answer = parse_answer({k: v for k, v in data.items() if k in FIELDS}, where)
            answer.id = str(data.get("id") or "").strip() or stable_answer_id(answer.question)
            if answer.id in seen:
                raise InvalidInput(f"{where}: same answer as row {seen[answer.id]} ({answer.id})")
            row = service.store.answer(answer.id)
            version = _row_version(data.get("version"), where)
            if row is not None and version is not None and version != row["version"]:
                raise InvalidInput(
                    f"{where}: answer {answer.id} was changed to version {row['version']} after this file was exported "
                    f"(version {version}); export again and redo the change"
                )
            kept = frozenset((c["doc"], c["article"]) for c in row["citations"]) if row else frozenset()
            check_citations(service, answer.citations, keep=kept, where=where)
            seen[answer.id] = number
            plan.append((answer, row))
        except QAError as exc:
            report.errors.append({"row": number, "error": str(exc)})
    report.errors.sort(key=lambda e: e["row"])
    if report.errors and not skip_invalid:
        return report
    with service.store.transaction():
        for answer, row in plan:
            report.ids.append(answer.id)
            if row is None:
                service.store.save_answer_version(answer, DRAFT, "imported", by, expected_version=0)
                report.created.append(answer.id)
                continue
            changed = _changed_fields(row, answer)
            if not changed:
                report.unchanged.append(answer.id)
                continue
            service.store.save_answer_version(answer, row["status"], "imported: " + ", ".join(changed), by,
                                              queue_id=row["queue_id"], expected_version=row["version"])
            report.updated.append(answer.id)
    report.applied = True
    return report


def _row_version(value, where: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: version must be a whole number, got {value!r}") from None


def export_rows(service, status: str | None = None) -> list[dict]:
    return [{k: a[k] for k in EXPORT_COLUMNS} for a in listing(service, status)]
