"""Production serving: granian (a Rust HTTP server) with several worker processes over one
knowledge base home.

Each worker opens the built index read-only (the files under ``<home>/indexes``) and its own
database connection, and runs one request at a time on one Python thread; granian reads and
writes the sockets outside Python and keeps connections alive. Workers notice a new
``<home>/CURRENT`` on their next request and switch to the new build; requests already running
finish on the index they started with.
"""

from __future__ import annotations

import gc
import os
import socket
import sys

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
