"""Concurrent curators on the same answer: no update is lost, the loser gets a clear Conflict."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from qa_engine.config import Settings
from qa_engine.errors import Conflict
from qa_engine.service import QAService

from conftest import FakeEmbedder

FAKE_CLI = Path(__file__).resolve().parent / "fake_cli.py"
ANSWER = {"question": "偶然所得交多少税", "answer": "百分之二十。", "citations": [{"doc": "示例个人所得税法", "article": "第三条"}]}


def curator(home: Path) -> QAService:
    """Each curator has a service of their own: another connection, as another process would."""
    return QAService(Settings.from_env(environ={}, home=home), embedder=FakeEmbedder())


def test_racing_edits_of_one_version_let_exactly_one_win(service):
    answer_id = service.add_answer(ANSWER, by="王芳")["id"]
    curators = [curator(service.home) for _ in range(8)]
    barrier = threading.Barrier(len(curators))
    outcomes: list = [None] * len(curators)

    def edit(n: int) -> None:
        barrier.wait()
        try:
            outcomes[n] = curators[n].edit_answer(answer_id, {"answer": f"第{n}位的修改。"}, by=f"curator{n}", expected_version=1)
        except Conflict as exc:
            outcomes[n] = exc

    run_together(curators, edit)
    winners = [o for o in outcomes if isinstance(o, dict)]
    losers = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(winners) == 1 and len(losers) == len(curators) - 1
    assert all("is at version 2, not 1: someone changed it meanwhile" in str(e) for e in losers)
    detail = service.answer_detail(answer_id)
    assert (detail["version"], detail["answer"]) == (2, winners[0]["answer"])
    assert [h["version"] for h in service.answer_history(answer_id)] == [1, 2]


def run_together(curators: list, target) -> None:
    """Run ``target(n)`` for every curator in its own thread, then close their databases."""
    threads = [threading.Thread(target=target, args=(n,)) for n in range(len(curators))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for c in curators:
        c.store.close()


def test_read_modify_write_with_retries_loses_nothing(service):
    """Curators each add alternatives, rereading on Conflict: every addition survives."""
    answer_id = service.add_answer(ANSWER, by="王芳")["id"]
    curators = [curator(service.home) for _ in range(4)]
    per_curator = 5
    conflicts = []

    def work(n: int) -> None:
        svc = curators[n]
        for k in range(per_curator):
            while True:
                current = svc.answer_detail(answer_id)
                try:
                    svc.edit_answer(answer_id, {"alternatives": current["alternatives"] + [f"问法{n}-{k}"]},
                                    by=f"curator{n}", expected_version=current["version"])
                    break
                except Conflict:
                    conflicts.append(n)

    run_together(curators, work)
    detail = service.answer_detail(answer_id)
    assert sorted(detail["alternatives"]) == sorted(f"问法{n}-{k}" for n in range(4) for k in range(per_curator))
    assert detail["version"] == 1 + 4 * per_curator


def test_approve_and_edit_racing_on_one_version(service):
    answer_id = service.add_answer(ANSWER, by="王芳")["id"]
    a, b = curator(service.home), curator(service.home)
    barrier = threading.Barrier(2)
    results = {}

    def run(name, action):
        barrier.wait()
        try:
            results[name] = action()
        except Conflict as exc:
            results[name] = exc

    threads = [
        threading.Thread(target=run, args=("approve", lambda: a.approve_answer(answer_id, by="甲", expected_version=1))),
        threading.Thread(target=run, args=("edit", lambda: b.edit_answer(answer_id, {"answer": "改了。"}, by="乙", expected_version=1))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    a.store.close()
    b.store.close()
    assert sorted(type(r).__name__ for r in results.values()) == ["Conflict", "dict"]
    detail = service.answer_detail(answer_id)
    if isinstance(results["approve"], dict):
        assert (detail["status"], detail["answer"]) == ("approved", "百分之二十。")
    else:  # the edit won; the approval must be redone on what was actually written
        assert (detail["status"], detail["answer"]) == ("draft", "改了。")


@pytest.mark.slow
def test_two_curator_processes_editing_with_expect_version(service):
    answer_id = service.add_answer(ANSWER, by="王芳")["id"]
    commands = [
        [sys.executable, str(FAKE_CLI), "--home", str(service.home), "answers", "edit", answer_id,
         "--answer", f"{who}的修改。", "--expect-version", "1", "--by", who]
        for who in ("甲", "乙")
    ]
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in processes]
    for p in processes:
        p.stdout.close()
        p.stderr.close()
    assert sorted(code for code, _, _ in results) == [0, 1]
    loser = next(err for code, _, err in results if code == 1)
    assert loser == (f"Error: answer {answer_id} is at version 2, not 1: someone changed it meanwhile; "
                     f'look at "qa answers show {answer_id}" and make your change again\n')
    winner = next(out for code, out, _ in results if code == 0)
    assert winner == f"{answer_id} is now version 2 (draft)\n"
    assert service.answer_detail(answer_id)["version"] == 2


def test_threads_of_one_server_worker_read_and_write_beside_another_worker(tmp_path):
    """A threaded WSGI server runs several requests of one process at once: each thread reads and
    logs questions while another worker (another connection) logs its own. None may fail."""
    from qa_engine.store import Store

    worker, other_worker = Store(tmp_path / "knowledge.db"), Store(tmp_path / "knowledge.db")
    errors: list[Exception] = []

    def ask_and_log(store: Store, thread: int) -> None:
        try:
            for number in range(200):
                store.answers_revision()
                store.log_query(f"问题{thread}-{number}", "2026-01-01", "answer", 0.9, None)
        except Exception as exc:  # any error fails the test below, with what it was
            errors.append(exc)

    threads = [threading.Thread(target=ask_and_log, args=(worker, n)) for n in range(4)]
    threads.append(threading.Thread(target=ask_and_log, args=(other_worker, 4)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert worker.db.execute("SELECT count(*) FROM query_log").fetchone()[0] == 5 * 200
    gc.collect()
    assert len(worker._databases) == 1  # the finished threads' connections went with them
    worker.close()
    other_worker.close()
