"""Production serving: gunicorn with several worker processes over one knowledge base home.

Each worker opens the built index read-only (the files under ``<home>/indexes``) and its own
database connection. Workers notice a new ``<home>/CURRENT`` on their next request and switch to
the new build; requests already running finish on the index they started with.
"""

from __future__ import annotations

import gc
import os
import sys

from .config import Settings
from .errors import IndexNotBuilt, QAError
from .index import current_build_id


def default_workers() -> int:
    return max(2, min(os.cpu_count() or 1, 8))


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, workers: int | None = None) -> None:
    """Serve the API, the widget and the console until interrupted."""
    from gunicorn.app.base import BaseApplication

    build = current_build_id(settings.home)
    if build is None:
        raise IndexNotBuilt(f'no index has been built in {settings.home}: run "qa build" first')
    workers = workers or default_workers()

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"])
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "sync")
            self.cfg.set("timeout", 120)  # a worker loads the index (seconds) before its first request
            self.cfg.set("graceful_timeout", 30)
            self.cfg.set("control_socket_disable", True)  # several servers may run on one machine
            self.cfg.set("post_worker_init", _warm_up)
            self.cfg.set("when_ready", lambda arbiter: print(
                f"qa serve: http://{host}:{port}/ ({workers} workers, index {build}, home {settings.home}); "
                "widget at /widget.js, demo at /demo, console at /console", file=sys.stderr, flush=True))

        def load(self):
            # Called in each worker after the fork: every worker gets its own service and connection.
            from .service import QAService
            from .webapp import create_app

            return create_app(service=QAService(settings))

    Server().run()


def _warm_up(worker) -> None:
    """Load the index and answer one question before the first request, so no caller waits for
    the index, the embedder or the first-use set-up of the model (several seconds).

    Then the objects made so far (the index, the tokenizer's dictionary: some 90,000) are moved out
    of the garbage collector's sight: they live as long as the worker, and a full collection that
    walked them paused a request for ~40 ms about once in 2,000."""
    try:
        worker.wsgi.extensions["qa_service"].ask("增值税", record=False)
    except QAError as exc:
        worker.log.warning("index not loaded yet: %s", exc)
    gc.freeze()
