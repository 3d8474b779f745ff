"""API keys for the HTTP endpoints that are not public: the agent console's, and curators'.

A key is 32 random bytes from ``secrets`` (URL-safe text with a ``qa_`` prefix), shown once when
it is made. Only its SHA-256 is stored: for a key with 256 bits of randomness a plain hash cannot
be reversed or guessed, so a slow password hash (bcrypt, scrypt) would only slow every request.
A key has a name (who or what holds it) and a role; revoking a key keeps its row, so the list
shows when it was made, last used and revoked, and by whom.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta, timezone

from .curation import require_identity
from .errors import Forbidden, InvalidInput, NotFound, Unauthorized
from .store import utc_now

AGENT, CURATOR = "agent", "curator"
ROLES = (AGENT, CURATOR)
PREFIX = "qa_"
NAME = re.compile(r"[\w.@-]{1,64}")
LAST_USED_RESOLUTION = timedelta(minutes=1)  # the console searches on every pause in typing: write at most once a minute


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _check_name(name) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name.strip()):
        raise InvalidInput(f"a key name is 1 to 64 letters, digits, '.', '_', '-' or '@' (no spaces), got {name!r}")
    return name.strip()


def add(service, name: str, role: str, by: str) -> dict:
    """Make a key; the result carries the key itself, which is never stored or shown again."""
    name = _check_name(name)
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    by = require_identity(by)
    key = PREFIX + secrets.token_urlsafe(32)
    store = service.store
    with store.transaction():
        if _active(store, name):
            raise InvalidInput(f'a key named {name} already exists: revoke it first ("qa keys revoke {name}") or pick another name')
        created_at = utc_now()
        store.db["api_keys"].insert({"name": name, "role": role, "key_hash": key_hash(key),
                                     "created_at": created_at, "created_by": by})
    return {"name": name, "role": role, "key": key, "created_at": created_at, "created_by": by}


def _active(store, name: str) -> dict | None:
    rows = store.db.execute_returning_dicts("SELECT * FROM api_keys WHERE name = ? AND revoked_at IS NULL", [name])
    return rows[0] if rows else None


def listing(service) -> list[dict]:
    """Every key, revoked ones too, newest first; never the key or its hash."""
    rows = service.store.db.execute_returning_dicts(
        "SELECT name, role, created_at, created_by, last_used_at, revoked_at, revoked_by FROM api_keys "
        "ORDER BY revoked_at IS NOT NULL, created_at DESC, id DESC")
    return [{**row, "status": "revoked" if row["revoked_at"] else "active"} for row in rows]


def revoke(service, name: str, by: str) -> dict:
    by = require_identity(by)
    store = service.store
    with store.transaction():
        row = _active(store, name) if isinstance(name, str) else None
        if row is None:
            raise NotFound(f'no active key named {name}: see "qa keys list"')
        revoked_at = utc_now()
        store.db.execute("UPDATE api_keys SET revoked_at = ?, revoked_by = ? WHERE id = ?", [revoked_at, by, row["id"]])
    return {"name": row["name"], "role": row["role"], "revoked_at": revoked_at, "revoked_by": by}


def authenticate(service, key: str | None, roles: tuple[str, ...]) -> dict:
    """The key's name and role if ``key`` is an active key with one of ``roles``.

    Unauthorized (401) when the key is missing, unknown or revoked; Forbidden (403) when its
    role may not do this."""
    if not key:
        raise Unauthorized('this endpoint needs an API key: send the header "Authorization: Bearer <key>" '
                           '(an administrator makes one with "qa keys add")')
    rows = service.store.db.execute_returning_dicts(
        "SELECT id, name, role, last_used_at, revoked_at FROM api_keys WHERE key_hash = ?", [key_hash(key)])
    if not rows:
        raise Unauthorized("this API key is not valid: check it was copied whole, or ask an administrator for a new one")
    row = rows[0]
    if row["revoked_at"]:
        raise Unauthorized(f"this API key ({row['name']}) was revoked at {row['revoked_at']}: ask an administrator for a new one")
    if row["role"] not in roles:
        raise Forbidden(f"this endpoint needs a key with role {' or '.join(roles)}; key {row['name']} has role {row['role']}")
    _touch(service.store, row)
    return {"name": row["name"], "role": row["role"]}


def _touch(store, row: dict) -> None:
    now = datetime.now(timezone.utc)
    if row["last_used_at"]:
        last = datetime.strptime(row["last_used_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        if now - last < LAST_USED_RESOLUTION:
            return
    with store.transaction():
        store.db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", [now.strftime("%Y-%m-%dT%H:%M:%SZ"), row["id"]])
