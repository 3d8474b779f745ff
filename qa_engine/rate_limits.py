"""The rate limiter's in-process counters, without a thread per request.

limits' ``MemoryStorage`` expires counters from a ``threading.Timer`` that it restarts on a hit
whenever the last one has run, which under steady load means starting a thread for nearly
every request (about 1 ms of CPU each, as much as answering the question). Counters are also
expired when read, so the sweep only frees memory; here it runs in the request itself, at most
once a second.
"""

from __future__ import annotations

import time

from limits.storage import MemoryStorage

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
