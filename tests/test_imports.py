"""Cheap entry points stay cheap: importing the package or asking for help loads no torch (nor pandas)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "sentence_transformers", "transformers", "pandas")


def heavy_modules_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_import_qa_engine_loads_no_torch():
    assert heavy_modules_after("import qa_engine, qa_engine.service, qa_engine.cli") == []


def test_help_loads_no_torch():
    code = "from click.testing import CliRunner\nfrom qa_engine.cli import cli\nassert CliRunner().invoke(cli, ['--help']).exit_code == 0"
    assert heavy_modules_after(code) == []


def test_build_and_ask_with_a_given_embedder_load_no_torch(tmp_path):
    code = f"""
import numpy as np
from qa_engine.config import Settings
from qa_engine.service import QAService
from tests.conftest import FakeEmbedder, write_small_laws
from pathlib import Path
laws = write_small_laws(Path({str(tmp_path)!r}) / "laws")
svc = QAService(Settings.from_env(environ={{}}, home=Path({str(tmp_path)!r}) / "home"), embedder=FakeEmbedder())
svc.ingest([laws])
svc.build()
assert svc.ask("偶然所得税率", record=False)["answers"]
"""
    assert heavy_modules_after(code) == []
