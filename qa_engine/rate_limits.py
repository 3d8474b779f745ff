"""Requests per client and endpoint, counted in fixed windows that every worker of a server shares.

The counts live in a small SQLite database beside the knowledge base (``rate_limits.db``), so the
workers of ``qa serve`` (or of any WSGI server running ``api.py`` over the same home) all count
every request: a client gets the configured rate from the server, not that rate from each worker.
The counts are disposable. ``prepare`` (``qa serve`` calls it before any worker starts) replaces a
damaged file with an empty one; a count that cannot be written (a full disk, a lock held too long)
lets the request through and is logged, because a hotline that refused every caller would be worse
than one that briefly counted nobody.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
from pathlib import Path

from limits import RateLimitItem, parse_many

from .errors import InvalidInput, QAError

log = logging.getLogger(__name__)

COUNTERS_NAME = "rate_limits.db"
SWEEP_EVERY_S = 60.0  # how often a process deletes the windows that have ended
WAIT_FOR_LOCK_S = 1.0  # another worker's count takes microseconds; waiting longer means something is wrong
WARN_EVERY_S = 60.0

# A client's window at an endpoint starts with its first request and ends ``expiry`` seconds later.
SCHEMA = "CREATE TABLE IF NOT EXISTS hits (key TEXT PRIMARY KEY, ends REAL NOT NULL, count INTEGER NOT NULL) WITHOUT ROWID"
COUNT = """INSERT INTO hits (key, ends, count) VALUES (:key, :now + :expiry, 1)
ON CONFLICT (key) DO UPDATE SET count = iif(ends > :now, count + 1, 1), ends = iif(ends > :now, ends, :now + :expiry)
RETURNING count, ends"""


def parse_limits(setting: str, text: str) -> list[RateLimitItem]:
    """The limits of a setting such as ``60 per minute`` or ``10/second; 1000/day``."""
    try:
        return parse_many(text)
    except ValueError:
        raise InvalidInput(f"{setting} must be a rate such as '60 per minute' or '10/second; 1000/day', got {text!r}") from None


def prepare(path: Path) -> bool:
    """Make sure the counters at ``path`` can be used, starting them afresh where the file is
    damaged. True when a damaged file was replaced."""
    try:
        try:
            _open(path).close()
            return False
        except sqlite3.DatabaseError as exc:
            if exc.sqlite_errorname not in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
                raise
        for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)
        _open(path).close()
        return True
    except sqlite3.Error as exc:
        raise QAError(f"cannot keep rate-limit counts in {path}: {exc}") from None


def _open(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=WAIT_FOR_LOCK_S, isolation_level=None, check_same_thread=False)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")  # a count lost in a power cut does not matter
        connection.execute(SCHEMA)
    except sqlite3.Error:
        connection.close()
        raise
    return connection


class RateLimits:
    """Named groups of limits (one group an API area); each client has its own count at each
    endpoint, counted in the file at ``path`` that the server's processes share."""

    def __init__(self, groups: dict[str, list[RateLimitItem]], path: Path):
        self.groups = groups
        self.path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._opened_in = 0  # the process that opened the connection: a forked worker opens its own
        self._next_sweep = 0.0
        self._warned_at = -math.inf

    def hit(self, group: str | None, endpoint: str, client: str) -> tuple[bool, dict[str, str]] | None:
        """Count a request: whether it is within every limit of its group, and the headers that
        tell the client where it stands (``Retry-After`` once refused). None: the group has no
        limits, or the count could not be kept."""
        items = self.groups.get(group) if group else None
        if not items:
            return None
        now = time.time()
        try:
            windows = self._count([(item.key_for(endpoint, client), item.get_expiry()) for item in items], now)
        except sqlite3.Error as exc:
            self._warn(exc)
            return None
        remaining, item, ends = min(((max(item.amount - count, 0), item, ends) for item, (count, ends) in zip(items, windows)),
                                    key=lambda tightest: tightest[0])
        headers = {"X-RateLimit-Limit": str(item.amount), "X-RateLimit-Remaining": str(remaining),
                   "X-RateLimit-Reset": str(math.ceil(ends))}
        allowed = all(count <= item.amount for item, (count, _) in zip(items, windows))  # each window counts the request
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil(ends - now)))
        return allowed, headers

    def _count(self, keys: list[tuple[str, int]], now: float) -> list[tuple[int, float]]:
        """Count a request in the window of each (key, seconds it lasts): its count so far, and when it ends."""
        with self._lock:
            if self._connection is None or self._opened_in != os.getpid():
                self._connection, self._opened_in = _open(self.path), os.getpid()
            connection = self._connection
            try:
                connection.execute("BEGIN IMMEDIATE")
                windows = [connection.execute(COUNT, {"key": key, "now": now, "expiry": expiry}).fetchall()[0] for key, expiry in keys]
                if now >= self._next_sweep:
                    connection.execute("DELETE FROM hits WHERE ends <= ?", (now,))
                    self._next_sweep = now + SWEEP_EVERY_S
                connection.execute("COMMIT")
                return windows
            except sqlite3.Error:
                self._connection = None  # opened afresh next time (the file may have been replaced)
                connection.close()
                raise

    def _warn(self, exc: sqlite3.Error) -> None:
        if time.monotonic() - self._warned_at >= WARN_EVERY_S:
            self._warned_at = time.monotonic()
            log.warning("rate limits not counted (requests let through): %s", exc)
