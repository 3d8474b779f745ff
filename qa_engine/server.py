"""Production serving: granian (a Rust HTTP server) with several worker processes over one
knowledge base home.

Each worker opens the built index read-only (the files under ``<home>/indexes``) and its own
database connection, and runs one request at a time on one Python thread; granian reads and
writes the sockets outside Python and keeps connections alive. Workers notice a new
``<home>/CURRENT`` on their next request and switch to the new build; requests already running
finish on the index they started with.

A kept-alive connection stays with the worker that accepted it, and the workers share out new
connections unevenly (a burst tends to go to one of them). Each worker answers as many requests a
second, so the callers of the fuller one wait longer: with 16 connections split 5/11 the slowest
1 % of answers took 49-52 ms where an 8/8 split gave 40-45 ms. So the workers even out their
connections (``ConnectionBalancer``).
"""

from __future__ import annotations

import gc
import os
import socket
import sys
import time
from pathlib import Path

from flask import request

from .config import Settings
from .errors import IndexNotBuilt, QAError
from .index import current_build_id
from .store import DATABASE_NAME, Store


def default_workers() -> int:
    return max(2, min(os.cpu_count() or 1, 8))


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, workers: int | None = None) -> None:
    """Serve the API, the widget and the console until interrupted."""
    from granian import Granian
    from granian.constants import Interfaces

    from .rate_limits import COUNTERS_NAME, parse_limits, prepare

    build = current_build_id(settings.home)
    if build is None:
        raise IndexNotBuilt(f'no index has been built in {settings.home}: run "qa build" first')
    workers = workers or default_workers()
    check_address(host, port)
    # a damaged database or a rate limit that means nothing stops here with one line, not in each worker
    Store(settings.home / DATABASE_NAME).close()
    parse_limits("QA_RATE_LIMIT", settings.rate_limit)
    parse_limits("QA_CONSOLE_RATE_LIMIT", settings.console_rate_limit)
    if prepare(settings.home / COUNTERS_NAME):
        print(f"qa serve: the rate-limit counters ({COUNTERS_NAME}) were damaged; counting starts afresh", file=sys.stderr, flush=True)
    os.environ["QA_HOME"] = str(settings.home.resolve())  # each worker reads its settings from the environment
    print(f"qa serve: http://{host}:{port}/ ({workers} workers, index {build}, home {settings.home}); "
          "widget at /widget.js, demo at /demo, console at /console", file=sys.stderr, flush=True)
    Granian(
        f"{__name__}:worker_app",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=1,  # one request at a time: the ask holds the GIL throughout
        websockets=False,
        respawn_failed_workers=True,
        log_level="warning",
    ).serve()


def check_address(host: str, port: int) -> None:
    """Fail with a clear message, before any worker starts, where the server could not listen."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a closed port's TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise QAError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def worker_app():
    """The app of one worker (granian calls this in each), warmed up before its first request."""
    from threadpoolctl import threadpool_limits

    from .service import QAService
    from .webapp import create_app

    # One request at a time on one core: numpy's BLAS threads (scoring thousands of approved answers'
    # phrasings) only contend with the other workers for the cores.
    threadpool_limits(1)
    app = create_app(service=QAService(Settings.from_env()))
    app.after_request(ConnectionBalancer(os.getppid()).after_request)
    _warm_up(app)
    print(f"qa serve: worker {os.getpid()} ready", file=sys.stderr, flush=True)
    return app


def _warm_up(app) -> None:
    """Load the index and answer one question before the first request, so no caller waits for
    the index, the embedder or the first-use set-up of the model (several seconds).

    Then the objects made so far (the index, the tokenizer's dictionary: some 90,000) are moved out
    of the garbage collector's sight: they live as long as the worker, and a full collection that
    walked them paused a request for ~40 ms about once in 2,000."""
    try:
        app.extensions["qa_service"].ask("增值税", record=False)
    except QAError as exc:
        print(f"qa serve: worker {os.getpid()} cannot answer yet: {exc}", file=sys.stderr, flush=True)
    gc.freeze()


class ConnectionBalancer:
    """Evens out kept-alive connections between the workers of one server (Linux).

    Every COUNT_EVERY_S a worker counts the open sockets of each worker (its siblings under the
    server's process) and, where it holds more connections than the emptiest worker, answers
    half as many requests as its lead with ``Connection: close``. Those callers connect again,
    and each new connection goes to whichever worker accepts it. A count reads a few dozen
    entries of ``/proc`` (about 0.1 ms); where ``/proc`` is not there, nothing happens."""

    COUNT_EVERY_S = 0.5

    def __init__(self, server_pid: int, worker_command: bytes | None = None):
        self._workers_file = Path(f"/proc/{server_pid}/task/{server_pid}/children")
        self._worker_command = worker_command or _command_line("self")  # other children of the server are not workers
        self._next_count = 0.0
        self._to_close = 0

    def after_request(self, response):
        now = time.monotonic()
        if now >= self._next_count:
            self._next_count = now + self.COUNT_EVERY_S
            self._to_close = self.excess(self.socket_counts())
        if self._to_close > 0 and request.environ.get("SERVER_PROTOCOL") == "HTTP/1.1":
            self._to_close -= 1
            response.headers["Connection"] = "close"
        return response

    def socket_counts(self) -> dict[int, int]:
        """Open sockets of each worker (the shared listening socket and the like count alike for all)."""
        try:
            workers = [int(pid) for pid in self._workers_file.read_text().split()]
        except OSError:
            return {}
        counts = {}
        for pid in workers:
            try:
                if _command_line(pid) != self._worker_command:
                    continue
                counts[pid] = sum(os.readlink(entry.path).startswith("socket:") for entry in os.scandir(f"/proc/{pid}/fd"))
            except OSError:
                pass  # a worker exiting, or a file descriptor closed while counting: no matter for a balance
        return counts

    @staticmethod
    def excess(counts: dict[int, int], pid: int | None = None) -> int:
        """How many connections this worker should hand back: half its lead over the emptiest worker."""
        mine = counts.get(pid or os.getpid())
        if mine is None or len(counts) < 2:
            return 0
        return (mine - min(counts.values())) // 2


def _command_line(pid: int | str) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
