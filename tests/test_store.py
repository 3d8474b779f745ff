"""The store: every SQL statement takes values as parameters, never formatted into the text."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "qa_engine"
# Formatted SQL that holds no input: fixed table names from the code, the schema version, and
# column names that are keyword arguments in the code (queue and complaint events); values are "?".
ALLOWED = {("backup.py", "SELECT count(*) FROM {table}"), ("backup.py", "SELECT count(*) FROM {t}"),
           ("store.py", "PRAGMA user_version = {number}"),
           ("complaints.py", "UPDATE complaints SET {assignments}history = ? WHERE id = ?"),
           ("queue.py", "UPDATE queue SET {assignments}, history = ? WHERE id = ?")}


def formatted_sql_calls() -> set[tuple[str, str]]:
    found = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in {"execute", "executescript", "execute_returning_dicts", "query"}:
                if node.args and isinstance(node.args[0], (ast.JoinedStr, ast.BinOp)) or (
                        node.args and isinstance(node.args[0], ast.Call) and getattr(node.args[0].func, "attr", "") == "format"):
                    found.add((path.name, ast.unparse(node.args[0])[2:-1]))
    return found


def test_all_sql_is_parameterised():
    assert formatted_sql_calls() - ALLOWED == set()


def test_hostile_text_is_stored_as_text(service):
    hostile = "'); DROP TABLE answers; -- 偶然所得"
    response = service.ask(hostile, record=True)
    stored = service.store.db.execute("SELECT question FROM query_log WHERE id = ?", [response["query_id"]]).fetchone()[0]
    assert stored == hostile
    assert service.store.counts()["documents"] == 3


def test_articles_read_a_batch_at_a_time_are_the_articles_in_index_order(service):
    articles = service.store.articles()
    assert list(service.store.iter_articles(batch=3)) == articles
    assert service.store.article_count() == len(articles) == 10
    assert [p.id for p in service.iter_passages()] == [a["id"] for a in articles]


def test_a_full_disk_is_one_clear_error_and_stores_nothing_of_the_change(service, small_laws, tmp_path):
    from qa_engine.errors import DiskFull

    before = service.store.counts()
    pages = service.store.db.execute("PRAGMA page_count").fetchone()[0]
    assert service.store.db.execute(f"PRAGMA max_page_count = {pages}").fetchone() == (pages,)  # this connection may not grow the file: as a full disk
    law = tmp_path / "more" / "示例车船税法(2011-02-25).md"
    law.parent.mkdir()
    law.write_text("# 中华人民共和国示例车船税法\n2011年2月25日 通过\n<!-- INFO END -->\n"
                   "第一条 " + "车船税的纳税人应当依照本法缴纳车船税。" * 2000 + "\n", "utf-8")
    with pytest.raises(DiskFull, match=r"the disk holding .*knowledge.db is full: the change under way was not stored"):
        service.ingest([law.parent])
    assert service.store.counts() == before
    assert not service.store.db.conn.in_transaction
    service.store.db.execute(f"PRAGMA max_page_count = {pages * 100}")  # space freed
    assert service.ingest([law.parent]).errors == []
    assert service.store.counts()["documents"] == before["documents"] + 1


def test_a_home_that_cannot_hold_a_database_is_one_clear_error(tmp_path):
    from qa_engine.errors import QAError
    from qa_engine.store import Store

    (tmp_path / "a file").write_text("not a folder")
    with pytest.raises(QAError, match=r"cannot make the knowledge base folder .*a file"):
        Store(tmp_path / "a file" / "knowledge.db")
    (tmp_path / "home" / "knowledge.db").mkdir(parents=True)
    with pytest.raises(QAError, match=r"cannot open the knowledge base .*knowledge.db \(unable to open database file\)"):
        Store(tmp_path / "home" / "knowledge.db")


ANSWER = {"question": "中奖了交多少个税", "answer": "偶然所得按百分之二十缴纳。", "citations": [{"doc": "示例个人所得税法", "article": "第三条"}]}


def older_schema(db) -> None:
    """Put a database back to the schema before the answers' revision number (migration 6)."""
    db.execute("DROP TABLE answers_revision")
    db.execute("PRAGMA user_version = 5")


def test_the_answers_revision_changes_with_each_answer_written_and_nothing_else(service):
    revisions = [service.store.answers_revision()]
    answer_id = service.add_answer(ANSWER, by="王芳")["id"]
    revisions.append(service.store.answers_revision())
    service.ask("偶然所得的税率是多少")  # logged: not an answer change
    service.flag_for_experts("外星人交什么税")
    assert service.store.answers_revision() == revisions[-1]
    service.approve_answer(answer_id, by="王芳")
    revisions.append(service.store.answers_revision())
    assert len(set(revisions)) == 3


def test_a_database_of_an_older_schema_is_brought_up_to_date_and_a_running_service_sees_its_answers(service, make_service):
    service.approve_answer(service.add_answer(ANSWER, by="王芳")["id"], by="王芳")
    older_schema(service.store.db)
    service.store.close()
    reopened = make_service(home=service.home)
    assert reopened.store.db.execute("PRAGMA user_version").fetchone()[0] == 6
    assert reopened.ask("中奖了交多少个税", as_of="2026-06-01", record=False)["answers"][0]["kind"] == "approved"


def test_on_a_full_disk_a_question_is_answered_and_says_it_was_not_recorded(service):
    asked = "外星人交什么税" * 250  # a long question, logged and flagged for the experts: fills the database's last page soon
    pages = service.store.db.execute("PRAGMA page_count").fetchone()[0]
    service.store.db.execute(f"PRAGMA max_page_count = {pages}")  # this connection may not grow the file: as a full disk
    responses = [service.ask(asked, as_of="2026-06-01") for _ in range(10)]
    unrecorded = [r for r in responses if r.get("recorded") is False]
    assert unrecorded, "the database filled up"
    assert all(r["route"] == "expert" and "ticket" not in r for r in unrecorded)
    assert unrecorded[-1]["answers"] == service.ask(asked, as_of="2026-06-01", record=False)["answers"]
    assert not service.store.db.conn.in_transaction
    service.store.db.execute(f"PRAGMA max_page_count = {pages * 100}")  # space freed
    assert "recorded" not in service.ask(asked, as_of="2026-06-01")
