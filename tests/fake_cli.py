"""The real `qa` command line, with the tests' deterministic embedder in place of the trained model.

For tests that run `qa` as a separate process (to kill it, or to race two of them): loading torch
and training the corpus model would take most of a minute per call. `serve` too: its workers
build their own services, which get the same embedder.
    python tests/fake_cli.py --home HOME build
"""

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import qa_engine.cli  # noqa: E402
import qa_engine.service  # noqa: E402
from conftest import FakeEmbedder  # noqa: E402


def service(ctx):
    from qa_engine.config import Settings
    from qa_engine.service import QAService

    if "service" not in ctx.obj:
        ctx.obj["service"] = QAService(Settings.from_env(home=ctx.obj.get("home")), embedder=FakeEmbedder())
    return ctx.obj["service"]


class FakeEmbedderService(qa_engine.service.QAService):
    """What `qa serve` workers build (qa_engine/server.py): a service with the tests' embedder."""

    def __init__(self, settings=None, embedder=None):
        super().__init__(settings, embedder or FakeEmbedder())


qa_engine.cli.service = service
qa_engine.service.QAService = FakeEmbedderService

if __name__ == "__main__":
    qa_engine.cli.main()
