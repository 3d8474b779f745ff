"""The complaint desk: complaints about service and reports (举报) of invoice fraud or tax evasion,
each a case with a category, contact, status and history.

Contact details are shown only by ``show`` (this desk's own command); lists, logs and reports
never include them.
"""

from __future__ import annotations

import json

from . import curation
from .errors import InvalidInput, NotFound
from .store import utc_now

OPEN, ASSIGNED, CLOSED = "open", "assigned", "closed"
STATUSES = (OPEN, ASSIGNED, CLOSED)


def _row(service, case_id: int) -> dict:
    if isinstance(case_id, bool) or not isinstance(case_id, int):
        raise InvalidInput("a complaint case id is a whole number")
    rows = service.store.db.execute_returning_dicts("SELECT * FROM complaints WHERE id = ?", [case_id])
    if not rows:
        raise NotFound(f'no complaint case {case_id}: see "qa complaints list"')
    return rows[0]


def summary(row: dict) -> dict:
    return {
        "id": row["id"],
        "question": row["question"],
        "category": row["category"],
        "status": row["status"],
        "assigned_to": row["assigned_to"],
        "created_at": row["created_at"],
        "has_contact": bool(row["contact"]),
    }


def listing(service, status: str | None = None, category: str | None = None) -> list[dict]:
    """Cases not yet closed (or those with ``status``, or "all"), oldest first."""
    if status not in (None, "all", *STATUSES):
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)} or all")
    rows = service.store.complaints()
    if status is None:
        rows = [r for r in rows if r["status"] != CLOSED]
    elif status != "all":
        rows = [r for r in rows if r["status"] == status]
    if category:
        rows = [r for r in rows if r["category"] == category]
    return [summary(r) for r in rows]


def show(service, case_id: int) -> dict:
    row = _row(service, case_id)
    return {
        **summary(row),
        "contact": json.loads(row["contact"]) if row["contact"] else None,
        "history": json.loads(row["history"]),
    }


def _event(service, row: dict, by: str, event: str, **changes) -> None:
    history = json.loads(row["history"]) + [{"at": utc_now(), "by": by, "event": event}]
    assignments = "".join(f"{name} = ?, " for name in changes)
    service.store.db.execute(
        f"UPDATE complaints SET {assignments}history = ? WHERE id = ?",
        [*changes.values(), json.dumps(history, ensure_ascii=False), row["id"]],
    )


def assign(service, case_id: int, to: str, by: str) -> dict:
    by = curation.require_identity(by)
    if not isinstance(to, str) or not to.strip():
        raise InvalidInput("say who handles the case: --to NAME")
    with service.store.transaction():
        row = _row(service, case_id)
        if row["status"] == CLOSED:
            raise InvalidInput(f"complaint case {case_id} is closed")
        _event(service, row, by, f"assigned to {to.strip()}", status=ASSIGNED, assigned_to=to.strip())
    return show(service, case_id)


def close(service, case_id: int, by: str, resolution: str) -> dict:
    by = curation.require_identity(by)
    if not isinstance(resolution, str) or not resolution.strip():
        raise InvalidInput("say how the case was resolved: --resolution TEXT")
    with service.store.transaction():
        row = _row(service, case_id)
        if row["status"] == CLOSED:
            raise InvalidInput(f"complaint case {case_id} is already closed")
        _event(service, row, by, f"closed: {resolution.strip()}", status=CLOSED)
    return show(service, case_id)
