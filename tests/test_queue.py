import json
from datetime import datetime, timedelta, timezone

import pytest

from qa_engine.errors import Conflict, InvalidInput, NotFound

UNANSWERABLE = "股票期权怎么交税"
CITE = "示例个人所得税法 第二条"


def test_the_loop_from_unanswered_question_to_approved_answer(run_cli, tmp_path):
    # A question nobody can answer goes to the experts, once, with a count.
    first = json.loads(run_cli("ask", UNANSWERABLE, "--json").output)
    again = json.loads(run_cli("ask", UNANSWERABLE, "--json").output)
    assert first["route"] == again["route"] == "expert"
    assert first["ticket"] == again["ticket"]
    listed = json.loads(run_cli("queue", "list", "--json").output)
    assert [(i["id"], i["question"], i["status"], i["count"]) for i in listed] == [(first["ticket"], UNANSWERABLE, "open", 2)]

    # The expert answers; mistakes are refused and change nothing.
    answer_args = ["queue", "answer", first["ticket"], "--answer", "股票期权所得按工资薪金所得计税。", "--cite", CITE]
    refused = run_cli(*answer_args)
    assert refused.exit_code == 1
    assert refused.output == "Error: say who is making this change: pass --by NAME or set QA_USER\n"
    bad_cite = run_cli("queue", "answer", first["ticket"], "--answer", "……", "--cite", "示例个人所得税法 第九十九条", "--by", "李明")
    assert bad_cite.exit_code == 1
    assert "Error: answer: cites 示例个人所得税法 第九十九条, but 示例个人所得税法(2018-08-31) has no 第九十九条" in bad_cite.output
    assert json.loads(run_cli("queue", "list", "--json").output)[0]["status"] == "open"
    answered = run_cli(*answer_args, "--json", env={"QA_USER": "李明"})
    assert answered.exit_code == 0, answered.output
    draft_id = json.loads(answered.output)["answer"]["id"]
    item = json.loads(run_cli("queue", "show", first["ticket"], "--json").output)
    assert (item["status"], item["answer_id"]) == ("answered", draft_id)

    # A draft is not served.
    before = json.loads(run_cli("ask", UNANSWERABLE, "--json", "--dry-run").output)
    assert draft_id not in [a["id"] for a in before["answers"]]

    # The curator approves it; the same question now gets it first, with its citation.
    approved = run_cli("answers", "approve", draft_id, "--by", "王芳")
    assert approved.exit_code == 0, approved.output
    after = json.loads(run_cli("ask", UNANSWERABLE, "--json").output)
    top = after["answers"][0]
    assert (top["kind"], top["id"], top["text"]) == ("approved", draft_id, "股票期权所得按工资薪金所得计税。")
    assert [(c["doc"], c["article"], c["status"]) for c in top["citations"]] == [
        ("示例个人所得税法(2018-08-31)", "第二条", "in_force")
    ]

    # And the report shows it: the hot question, now answered by the approved answer.
    out = tmp_path / "report.html"
    result = run_cli("report", "--since", "1d", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    hot = report["clusters"][0]
    assert (hot["question"], hot["count"], hot["latest_top_answer"]) == (UNANSWERABLE, 3, draft_id)
    assert [a["answer_id"] for a in report["approved_in_period"]] == [draft_id]
    html = out.read_text("utf-8")
    assert UNANSWERABLE in html and draft_id in html and "data:image/png;base64," in html


def test_queue_claim_dismiss_and_errors(service, run_cli):
    ticket = service.ask(UNANSWERABLE)["ticket"]
    assert run_cli("queue", "claim", ticket, "--by", "李明").output == f"#{ticket} claimed by 李明\n"
    taken = run_cli("queue", "claim", ticket, "--by", "张伟")
    assert (taken.exit_code, taken.output) == (1, f"Error: queue item {ticket} is claimed by 李明\n")
    other = run_cli("queue", "answer", ticket, "--answer", "……", "--cite", CITE, "--by", "张伟")
    assert other.output == f"Error: queue item {ticket} is claimed by 李明\n"
    no_reason = run_cli("queue", "dismiss", ticket, "--by", "李明")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    assert run_cli("queue", "dismiss", ticket, "--reason", "重复", "--by", "李明").exit_code == 0
    assert json.loads(run_cli("queue", "list", "--json").output) == []
    gone = run_cli("queue", "claim", ticket, "--by", "李明")
    assert gone.output == f"Error: queue item {ticket} is already dismissed\n"
    history = [e["event"] for e in json.loads(run_cli("queue", "show", ticket, "--json").output)["history"]]
    assert history == ["claimed", "dismissed: 重复"]
    assert run_cli("queue", "show", 999).output == 'Error: no queue item 999: see "qa queue list"\n'
    assert run_cli("queue", "list", "--status", "all", "--json").exit_code == 0


def test_callback_contact_only_in_show(service, run_cli):
    ticket = service.request_callback("境外所得怎么申报", "张三", "13800000000")
    listed = run_cli("queue", "list", "--json").output
    assert "13800000000" not in listed and "张三" not in listed
    assert json.loads(listed)[0]["has_contact"] is True
    shown = json.loads(run_cli("queue", "show", ticket, "--json").output)
    assert shown["contact"] == {"name": "张三", "phone": "13800000000"}


def test_overdue_items_are_listed(service, run_cli):
    ticket = service.ask(UNANSWERABLE)["ticket"]
    assert json.loads(run_cli("queue", "overdue", "--json").output) == []
    past = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    service.store.db.execute("UPDATE queue SET due_at = ? WHERE id = ?", [past, ticket])
    late = json.loads(run_cli("queue", "overdue", "--json").output)
    assert [(i["id"], i["overdue"]) for i in late] == [(ticket, True)]
    assert "OVERDUE" in run_cli("queue", "list").output


def test_queue_service_errors(service):
    with pytest.raises(NotFound):
        service.claim_queue_item(5, "李明")
    with pytest.raises(InvalidInput):
        service.queue_item("5")
    ticket = service.ask(UNANSWERABLE)["ticket"]
    service.claim_queue_item(ticket, "李明")
    with pytest.raises(Conflict):
        service.dismiss_queue_item(ticket, "张伟", "不是我的")
    with pytest.raises(InvalidInput, match="status must be"):
        service.queue_items("late")
