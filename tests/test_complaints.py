import json

import pytest

from qa_engine.errors import InvalidInput, NotFound


def test_complaint_desk_lifecycle(service, run_cli):
    case = service.file_complaint("我要举报某公司虚开发票", {"name": "张三", "phone": "13800000000"})
    listed = run_cli("complaints", "list", "--json")
    assert listed.exit_code == 0
    items = json.loads(listed.output)
    assert [(c["id"], c["question"], c["status"], c["category"]) for c in items] == [
        (case, "我要举报某公司虚开发票", "open", "虚开发票")]
    assert "13800000000" not in listed.output and "张三" not in listed.output
    assert "13800000000" not in run_cli("complaints", "list").output

    shown = run_cli("complaints", "show", case)
    assert "contact: name 张三, phone 13800000000" in shown.output

    no_identity = run_cli("complaints", "assign", case, "--to", "稽查局")
    assert (no_identity.exit_code, no_identity.output) == (
        1, "Error: say who is making this change: pass --by NAME or set QA_USER\n")
    assert run_cli("complaints", "assign", case, "--to", "稽查局", "--by", "赵敏").output == f"#{case} assigned to 稽查局\n"
    assert run_cli("complaints", "close", case, "--resolution", "已立案", "--by", "赵敏").exit_code == 0
    again = run_cli("complaints", "close", case, "--resolution", "已立案", "--by", "赵敏")
    assert again.output == f"Error: complaint case {case} is already closed\n"
    assert json.loads(run_cli("complaints", "list", "--json").output) == []
    closed = json.loads(run_cli("complaints", "list", "--status", "all", "--json").output)
    assert [c["status"] for c in closed] == ["closed"]
    detail = json.loads(run_cli("complaints", "show", case, "--json").output)
    assert [e["event"] for e in detail["history"]] == ["opened", "assigned to 稽查局", "closed: 已立案"]
    assert detail["assigned_to"] == "稽查局"


def test_complaints_asked_with_personal_data_are_redacted(service, run_cli):
    response = service.ask("我要投诉，办事大厅服务态度差，我电话13912345678，身份证110101199003071234")
    assert response["route"] == "complaint"
    for output in (run_cli("complaints", "list", "--json").output, run_cli("complaints", "show", response["case"]).output):
        assert "13912345678" not in output and "110101199003071234" not in output
    logged = service.store.db.execute("SELECT question FROM query_log").fetchall()
    assert logged == [("我要投诉，办事大厅服务态度差，我电话[手机号]，身份证[身份证号]",)]


def test_complaint_errors(service, run_cli):
    assert run_cli("complaints", "show", 42).output == 'Error: no complaint case 42: see "qa complaints list"\n'
    case = service.file_complaint("有人卖发票，我要举报")
    with pytest.raises(InvalidInput, match="--resolution"):
        service.close_complaint(case, "赵敏", " ")
    with pytest.raises(InvalidInput, match="--to"):
        service.assign_complaint(case, "", "赵敏")
    with pytest.raises(NotFound):
        service.assign_complaint(99, "稽查局", "赵敏")
    with pytest.raises(InvalidInput, match="status must be"):
        service.complaint_cases("pending")
