"""Requests per client and endpoint, counted in fixed windows in this process (the ``limits``
library's counters and strategy).

limits' ``MemoryStorage`` expires counters from a ``threading.Timer`` that it restarts on a hit
whenever the last one has run, which under steady load means starting a thread for nearly
every request (about 1 ms of CPU each, as much as answering the question). Counters are also
expired when read, so the sweep only frees memory; here it runs in the request itself, at most
once a second.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from .errors import InvalidInput

SWEEP_EVERY_S = 1.0


class QuietMemoryStorage(MemoryStorage):
    STORAGE_SCHEME = ["quiet-memory"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str):
        super().__init__(uri, wrap_exceptions, **options)
        self.timer.cancel()
        self._last_sweep = time.monotonic()

    def _MemoryStorage__schedule_expiry(self) -> None:  # replaces the timer thread of the base class
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_EVERY_S:
            self._last_sweep = now
            self._MemoryStorage__expire_events()


def parse_limits(setting: str, text: str) -> list[RateLimitItem]:
    """The limits of a setting such as ``60 per minute`` or ``10/second; 1000/day``."""
    try:
        return parse_many(text)
    except ValueError:
        raise InvalidInput(f"{setting} must be a rate such as '60 per minute' or '10/second; 1000/day', got {text!r}") from None


class RateLimits:
    """Named groups of limits (one group an API area); each client has its own count at each endpoint."""

    def __init__(self, groups: dict[str, list[RateLimitItem]]):
        self.groups = groups
        self.storage = QuietMemoryStorage()
        self.limiter = FixedWindowRateLimiter(self.storage)

    def hit(self, group: str | None, endpoint: str, client: str) -> tuple[bool, dict[str, str]] | None:
        """Count a request: whether it is within every limit of its group, and the headers that
        tell the client where it stands (``Retry-After`` once refused). None: the group has no limits."""
        items = self.groups.get(group) if group else None
        if not items:
            return None
        allowed = all([self.limiter.hit(item, endpoint, client) for item in items])  # each window counts the request
        item, stats = min(((item, self.limiter.get_window_stats(item, endpoint, client)) for item in items),
                          key=lambda pair: pair[1].remaining)
        headers = {"X-RateLimit-Limit": str(item.amount), "X-RateLimit-Remaining": str(stats.remaining),
                   "X-RateLimit-Reset": str(math.ceil(stats.reset_time))}
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil(stats.reset_time - time.time())))
        return allowed, headers
