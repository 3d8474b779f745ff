"""The expert queue: questions the engine could not answer with confidence, flagged by agents,
and callback requests. Experts claim an item, answer it (which writes a draft answer for a
curator to approve) or dismiss it. Every item is due a number of working days after it was
first seen; ``overdue`` lists the late ones.

Contact details of callback requests appear only in ``show`` (the expert calling back needs
them); lists say only whether an item has them.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from . import curation
from .errors import Conflict, InvalidInput, NotFound
from .store import utc_now

OPEN, CLAIMED, ANSWERED, DISMISSED = "open", "claimed", "answered", "dismissed"
STATUSES = (OPEN, CLAIMED, ANSWERED, DISMISSED)
ACTIVE = (OPEN, CLAIMED)


def _row(service, item_id: int) -> dict:
    if isinstance(item_id, bool) or not isinstance(item_id, int):
        raise InvalidInput("a queue item id is a whole number")
    rows = service.store.db.execute_returning_dicts("SELECT * FROM queue WHERE id = ?", [item_id])
    if not rows:
        raise NotFound(f'no queue item {item_id}: see "qa queue list"')
    return rows[0]


def summary(row: dict, now: datetime | None = None) -> dict:
    """An item as lists show it: no contact details."""
    now = now or datetime.now(timezone.utc)
    first = _parse(row["first_seen"])
    due = _parse(row["due_at"]) if row["due_at"] else None
    return {
        "id": row["id"],
        "question": row["question"],
        "status": row["status"],
        "count": row["count"],
        "kind": row["kind"],
        "first_seen": row["first_seen"],
        "last_seen": row["last_seen"],
        "due_at": row["due_at"],
        "age_hours": round((now - first).total_seconds() / 3600, 1),
        "overdue": bool(due and row["status"] in ACTIVE and now > due),
        "confidence": row["confidence"],
        "claimed_by": row["claimed_by"],
        "answer_id": row["answer_id"],
        "has_contact": bool(row["contact"]),
    }


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def listing(service, status: str | None = None) -> list[dict]:
    """Open and claimed items (or those with ``status``, or "all"), most asked first."""
    if status not in (None, "all", *STATUSES):
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)} or all")
    rows = service.store.queue_items(None if status in (None, "all") else status)
    if status is None:
        rows = [r for r in rows if r["status"] in ACTIVE]
    now = datetime.now(timezone.utc)
    items = [summary(r, now) for r in rows]
    return sorted(items, key=lambda i: (-i["count"], i["id"]))


def show(service, item_id: int) -> dict:
    row = _row(service, item_id)
    item = summary(row)
    item["contact"] = json.loads(row["contact"]) if row["contact"] else None
    item["history"] = json.loads(row["history"] or "[]")
    return item


def overdue(service) -> list[dict]:
    return sorted((i for i in listing(service) if i["overdue"]), key=lambda i: i["due_at"])


def _event(service, row: dict, by: str, event: str, **changes) -> None:
    history = json.loads(row["history"] or "[]") + [{"at": utc_now(), "by": by, "event": event}]
    assignments = ", ".join(f"{name} = ?" for name in changes)
    service.store.db.execute(
        f"UPDATE queue SET {assignments}, history = ? WHERE id = ?",
        [*changes.values(), json.dumps(history, ensure_ascii=False), row["id"]],
    )


def _check_active(row: dict, by: str) -> None:
    if row["status"] not in ACTIVE:
        raise InvalidInput(f"queue item {row['id']} is already {row['status']}")
    if row["status"] == CLAIMED and row["claimed_by"] != by:
        raise Conflict(f"queue item {row['id']} is claimed by {row['claimed_by']}")


def claim(service, item_id: int, by: str) -> dict:
    by = curation.require_identity(by)
    with service.store.transaction():
        row = _row(service, item_id)
        _check_active(row, by)
        if row["status"] == CLAIMED:
            raise InvalidInput(f"queue item {item_id} is already claimed by you")
        _event(service, row, by, "claimed", status=CLAIMED, claimed_by=by)
    return show(service, item_id)


def answer(service, item_id: int, data: dict, by: str) -> dict:
    """Write a draft answer linked to the item (question defaults to the item's) and mark it answered."""
    by = curation.require_identity(by)
    with service.store.transaction():
        row = _row(service, item_id)
        _check_active(row, by)
        draft = curation.add(service, {"question": row["question"], **{k: v for k, v in data.items() if v}}, by,
                             queue_id=item_id)
        _event(service, row, by, f"answered with draft {draft['id']}", status=ANSWERED, answer_id=draft["id"],
               claimed_by=row["claimed_by"] or by)
    return {"item": show(service, item_id), "answer": draft}


def dismiss(service, item_id: int, by: str, reason: str) -> dict:
    by = curation.require_identity(by)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("say why the item is dismissed: --reason TEXT")
    with service.store.transaction():
        row = _row(service, item_id)
        _check_active(row, by)
        _event(service, row, by, f"dismissed: {reason.strip()}", status=DISMISSED)
    return show(service, item_id)
