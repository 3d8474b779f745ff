"""SIGKILL during `qa ingest`, `qa build`, `qa answers import` and `qa answers approve`: afterwards the
knowledge base is consistent, the previous index still serves, and rerunning the command completes.

Each command runs as a real process (tests/fake_cli.py: the real CLI with the deterministic test
embedder) and is killed at several points spread over its measured running time.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qa_engine.config import Settings
from qa_engine.corpus import parse_law_file
from qa_engine.index import current_build_id
from qa_engine.service import QAService

from conftest import FakeEmbedder, write_small_laws

pytestmark = pytest.mark.slow

FAKE_CLI = Path(__file__).resolve().parent / "fake_cli.py"
KILL_FRACTIONS = (0.35, 0.6, 0.85)
NUMERALS = "一二三四五六七八九"
LAWS, ARTICLES = 80, 30


def chinese_number(n: int) -> str:
    tens, ones = divmod(n, 10)
    return (NUMERALS[tens - 1] if tens > 1 else "") + ("十" if tens else "") + (NUMERALS[ones - 1] if ones else "")


def write_synthetic_laws(folder: Path, count: int = LAWS, articles: int = ARTICLES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        body = "\n\n".join(
            f"第{chinese_number(a)}条 合成税法{i}第{a}条：销售货物、提供劳务应当按照税率缴纳增值税，个人所得税按月预扣预缴，发票应当如实开具。"
            for a in range(1, articles + 1)
        )
        (folder / f"合成税法{i:03d}(2020-01-01).md").write_text(f"# 合成税法{i:03d}\n2020年1月1日 通过\n<!-- INFO END -->\n{body}\n", "utf-8")
    return folder


def qa(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(FAKE_CLI), "--home", str(home), *args], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "QA_USER": "测试"}, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return result


def timed(home: Path, *args: str) -> float:
    started = time.monotonic()
    qa(home, *args)
    return time.monotonic() - started


def killed(home: Path, delay: float, *args: str) -> bool:
    """Start `qa ARGS`, SIGKILL it after ``delay`` seconds; True if it was still running."""
    process = subprocess.Popen([sys.executable, str(FAKE_CLI), "--home", str(home), *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin", "QA_USER": "测试"})
    time.sleep(delay)
    running = process.poll() is None
    if running:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    return running


def open_service(home: Path) -> QAService:
    return QAService(Settings.from_env(environ={}, home=home), embedder=FakeEmbedder())


def assert_consistent(home: Path) -> None:
    """SQLite intact, every document stored whole, every answer's version history complete."""
    db = sqlite3.connect(home / "knowledge.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        for doc, source in db.execute("SELECT doc, source FROM documents").fetchall():
            stored = db.execute("SELECT count(*) FROM articles WHERE doc = ?", [doc]).fetchone()[0]
            assert stored == len(parse_law_file(Path(source)).articles), doc
        for answer_id, version in db.execute("SELECT id, version FROM answers").fetchall():
            versions = [v for (v,) in db.execute("SELECT version FROM answer_versions WHERE answer_id = ? ORDER BY version", [answer_id])]
            assert versions == list(range(1, version + 1)), answer_id
        orphans = db.execute("SELECT count(*) FROM answer_versions WHERE answer_id NOT IN (SELECT id FROM answers)").fetchone()[0]
        assert orphans == 0
    finally:
        db.close()


class Server:
    """An in-process service asking one question, as a running server would: it picks up a new
    index when CURRENT changes, and must keep answering from whatever CURRENT names."""

    def __init__(self, home: Path):
        self.service = open_service(home)

    def answer(self) -> dict:
        return self.service.ask("偶然所得的税率是多少", record=False)

    def close(self) -> None:
        self.service.store.close()


@pytest.fixture
def server_for():
    made = []

    def make(home: Path) -> Server:
        made.append(Server(home))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """Homes to copy (the small laws built; small and synthetic laws built), the synthetic corpus
    big enough that commands take seconds, and how long each command takes unkilled."""
    root = tmp_path_factory.mktemp("faults")
    small = write_small_laws(root / "small")
    big = write_synthetic_laws(root / "big")
    answers = root / "answers.jsonl"
    with open(answers, "w", encoding="utf-8") as out:
        for i in range(300):
            out.write(json.dumps({"question": f"合成问题{i}：销售货物怎么交税", "answer": f"按税率缴纳增值税（{i}）。",
                                  "citations": [{"doc": f"合成税法{i % LAWS:03d}", "article": "第一条"}]}, ensure_ascii=False) + "\n")
    small_home, big_home = root / "small-home", root / "big-home"
    qa(small_home, "ingest", str(small))
    qa(small_home, "build")
    durations = {"ingest": timed(big_home, "ingest", str(small), str(big)), "build": timed(big_home, "build")}
    scratch = root / "scratch"
    shutil.copytree(big_home, scratch)
    durations["import"] = timed(scratch, "answers", "import", str(answers))
    return {"small": small, "big": big, "answers": answers, "durations": durations, "homes": {False: small_home, True: big_home}}


def fresh_home(tmp_path: Path, corpus: dict, big: bool) -> Path:
    home = tmp_path / "home"
    shutil.copytree(corpus["homes"][big], home)
    return home


def test_killed_ingest_leaves_whole_documents_and_reruns(tmp_path, corpus, server_for):
    home = fresh_home(tmp_path, corpus, big=False)
    server = server_for(home)
    before = server.answer()
    build = current_build_id(home)
    interrupted = 0
    for fraction in KILL_FRACTIONS:
        interrupted += killed(home, corpus["durations"]["ingest"] * fraction, "ingest", str(corpus["big"]))
        assert_consistent(home)
        assert current_build_id(home) == build and server.answer() == before
    assert interrupted >= 1
    qa(home, "ingest", str(corpus["big"]))
    assert_consistent(home)
    svc = open_service(home)
    assert svc.store.counts()["documents"] == 3 + LAWS
    svc.store.close()


def test_killed_build_keeps_the_previous_index_serving_and_the_rerun_cleans_up(tmp_path, corpus, server_for):
    home = fresh_home(tmp_path, corpus, big=False)
    server = server_for(home)
    old_build, before = current_build_id(home), server.answer()
    qa(home, "ingest", str(corpus["big"]))
    interrupted = 0
    for fraction in KILL_FRACTIONS:
        interrupted += killed(home, corpus["durations"]["build"] * fraction, "build")
        assert_consistent(home)
        now = current_build_id(home)
        if now == old_build:
            assert server.answer() == before
        else:  # the kill came after the switch: the new index is complete
            assert json.loads((home / "indexes" / now / "manifest.json").read_text("utf-8"))["passages"] > 10
            assert server.answer()["answers"]
    assert interrupted >= 1
    qa(home, "build")
    assert list((home / "indexes").glob("*.tmp")) == []
    manifest = json.loads((home / "indexes" / current_build_id(home) / "manifest.json").read_text("utf-8"))
    assert manifest["passages"] == 10 + LAWS * ARTICLES
    assert server.answer()["answers"]


def test_killed_import_is_all_or_nothing_and_reruns(tmp_path, corpus, server_for):
    home = fresh_home(tmp_path, corpus, big=True)
    server = server_for(home)
    before = server.answer()
    interrupted = 0
    for fraction in KILL_FRACTIONS:
        interrupted += killed(home, corpus["durations"]["import"] * fraction, "answers", "import", str(corpus["answers"]))
        assert_consistent(home)
        assert len(server.service.store.answers()) in (0, 300)
        assert server.answer() == before
    assert interrupted >= 1
    qa(home, "answers", "import", str(corpus["answers"]))
    assert_consistent(home)
    svc = open_service(home)
    assert len(svc.list_answers("draft")) == 300
    svc.store.close()


def test_killed_approval_leaves_one_whole_version_and_reruns(tmp_path, corpus):
    home = fresh_home(tmp_path, corpus, big=False)
    svc = open_service(home)
    ids = [svc.add_answer({"question": f"偶然所得交多少税{i}", "answer": "百分之二十。",
                           "citations": [{"doc": "示例个人所得税法", "article": "第三条"}]}, by="王芳")["id"] for i in range(3)]
    svc.store.close()
    started = time.monotonic()
    qa(home, "answers", "approve", ids[0])
    duration = time.monotonic() - started
    for answer_id, fraction in zip(ids[1:], KILL_FRACTIONS[:2]):
        killed(home, duration * fraction, "answers", "approve", answer_id)
        assert_consistent(home)
        svc = open_service(home)
        status, version = (svc.answer_detail(answer_id)[k] for k in ("status", "version"))
        svc.store.close()
        assert (status, version) in (("draft", 1), ("approved", 2))
        rerun = qa(home, "answers", "approve", answer_id, check=False)
        assert rerun.returncode == 0 or "is already approved" in rerun.stderr
        svc = open_service(home)
        assert svc.answer_detail(answer_id)["status"] == "approved"
        svc.store.close()
    assert_consistent(home)
