import csv
import io
import json
import re

import openpyxl
import pytest

from qa_engine.answer_files import read_answers
from qa_engine.errors import Conflict, InvalidInput, NotFound

ANSWER = {
    "question": "偶然所得交多少税",
    "alternatives": ["中奖要交税吗", "彩票中奖个税税率"],
    "answer": "偶然所得适用比例税率，税率为百分之二十。",
    "citations": [{"doc": "示例个人所得税法", "article": "第三条"}],
    "category": "个人所得税",
}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_import_contract_gives_draft_ids_and_approval_serves_them(run_cli, service, tmp_path):
    file = write_jsonl(tmp_path / "answers.jsonl", [ANSWER])
    result = run_cli("answers", "import", file, "--by", "王芳", "--json")
    assert result.exit_code == 0, result.output
    ids = json.loads(result.output)["ids"]
    assert len(ids) == 1
    assert service.answer_detail(ids[0])["status"] == "draft"
    assert all(a["kind"] == "article" for a in service.ask("偶然所得交多少税", record=False)["answers"])

    assert run_cli("answers", "approve", ids[0], "--by", "王芳").exit_code == 0
    ask = json.loads(run_cli("ask", "中奖要交税吗", "--json", "--dry-run").output)
    hit = json.loads(run_cli("hit-test", "中奖要交税吗", "--json").output)
    assert ask["answers"][0]["id"] == ids[0]
    assert {k: ask[k] for k in ("answers", "route", "confidence")} == {
        "answers": [{k: v for k, v in a.items() if k not in ("channels", "matched_terms")} for a in hit["answers"]],
        "route": hit["route"],
        "confidence": hit["confidence"],
    }


def test_changes_reach_a_running_service_without_rebuild_or_restart(service, make_service):
    server = service  # the long-running process
    curator = make_service(home=service.home)  # another process on the same knowledge base
    draft = curator.add_answer(ANSWER, by="王芳")
    curator.approve_answer(draft["id"], by="王芳")
    assert server.ask("中奖要交税吗", record=False)["answers"][0]["id"] == draft["id"]
    curator.edit_answer(draft["id"], {"answer": "偶然所得按次计税，税率百分之二十。"}, by="王芳")
    assert server.ask("中奖要交税吗", record=False)["answers"][0]["text"] == "偶然所得按次计税，税率百分之二十。"
    curator.retire_answer(draft["id"], by="王芳", reason="合并到其他答复")
    assert draft["id"] not in [a["id"] for a in server.ask("中奖要交税吗", record=False)["answers"]]


def test_a_change_works_out_only_the_phrasings_it_adds_and_answers_as_a_fresh_start_would(service, make_service):
    server = service
    curator = make_service(home=service.home)
    first = curator.add_answer(ANSWER, by="王芳")
    curator.approve_answer(first["id"], by="王芳")
    server.ask("中奖要交税吗", record=False)
    encoded: list[str] = []
    embedder_encode = server.retriever().embedder.encode
    server.retriever().embedder.encode = lambda texts: encoded.extend(texts) or embedder_encode(texts)
    read: list[str] = []
    answer_types = server.retriever().analyzer.answer_types
    server.retriever().analyzer.answer_types = lambda text: read.append(text) or answer_types(text)
    second = curator.add_answer({**ANSWER, "question": "买彩票中了奖怎么交税", "alternatives": ["中奖要交税吗"]}, by="王芳")
    curator.approve_answer(second["id"], by="王芳")
    server.retriever()  # notices the change
    assert encoded == ["买彩票中了奖怎么交税"], "the one new phrasing"
    assert read == [], "the new answer's text is the first one's, read already"
    questions = ["中奖要交税吗", "买彩票中了奖怎么交税", "偶然所得税率", "居民个人是谁"]
    answered = [server.ask(q, record=False) for q in questions]
    assert answered == [make_service(home=service.home).ask(q, record=False) for q in questions]


def test_every_change_is_a_new_version_with_who_and_what(run_cli, service):
    answer_id = service.add_answer(ANSWER, by="王芳")["id"]
    assert run_cli("answers", "edit", answer_id, "--answer", "税率为百分之二十。", "--alt", "中奖交税", "--by", "李明").exit_code == 0
    assert run_cli("answers", "approve", answer_id, "--by", "赵敏").exit_code == 0
    assert run_cli("answers", "retire", answer_id, "--reason", "政策调整", "--by", "赵敏").exit_code == 0
    history = json.loads(run_cli("answers", "history", answer_id, "--json").output)
    assert [(v["version"], v["by"], v["status"], v["change"]) for v in history] == [
        (1, "王芳", "draft", "created"),
        (2, "李明", "draft", "edited alternatives, answer"),
        (3, "赵敏", "approved", "approved"),
        (4, "赵敏", "retired", "retired: 政策调整"),
    ]
    assert history[0]["data"]["answer"] == ANSWER["answer"]  # the old text is kept
    assert history[1]["data"]["alternatives"] == ["中奖交税"]
    text = run_cli("answers", "history", answer_id).output
    assert "v4" in text and "retired: 政策调整" in text
    shown = run_cli("answers", "show", answer_id).output
    assert "(retired, version 4, by 赵敏" in shown and "依据: 示例个人所得税法 第三条" in shown
    assert run_cli("answers", "list", "--status", "retired").output.startswith(f"{answer_id}  retired  v4")


def test_two_curators_cannot_lose_an_update(run_cli, service):
    answer_id = service.add_answer(ANSWER, by="王芳")["id"]
    first = run_cli("answers", "edit", answer_id, "--answer", "甲的修改。", "--expect-version", 1, "--by", "甲")
    assert first.exit_code == 0
    second = run_cli("answers", "edit", answer_id, "--answer", "乙的修改。", "--expect-version", 1, "--by", "乙")
    assert second.exit_code == 1
    assert second.output == (
        f"Error: answer {answer_id} is at version 2, not 1: someone changed it meanwhile; "
        f'look at "qa answers show {answer_id}" and make your change again\n'
    )
    assert service.answer_detail(answer_id)["answer"] == "甲的修改。"
    with pytest.raises(Conflict):
        service.approve_answer(answer_id, by="乙", expected_version=1)


def test_curation_errors_are_clear(run_cli, service):
    no_identity = run_cli("answers", "add", "--question", "问", "--answer", "答", "--cite", "示例个人所得税法 第三条")
    assert (no_identity.exit_code, no_identity.output) == (
        1, "Error: say who is making this change: pass --by NAME or set QA_USER\n")
    missing_doc = run_cli("answers", "add", "--question", "问", "--answer", "答", "--cite", "增值税法 第一条", "--by", "王芳")
    assert missing_doc.output == (
        "Error: answer: cites 增值税法 第一条, but there is no document '增值税法': ingest it first (\"qa ingest PATH\")\n")
    superseded = run_cli("answers", "add", "--question", "问", "--answer", "答", "--cite",
                         "示例发票暂行条例(2011-01-08) 第二条", "--by", "王芳")
    assert superseded.output == (
        "Error: answer: cites 示例发票暂行条例(2011-01-08) 第二条, but 示例发票暂行条例(2011-01-08) was superseded "
        "on 2026-01-01 by 示例发票法(2024-12-25): cite the version in force\n")
    answer_id = service.add_answer(ANSWER, by="王芳")["id"]
    again = run_cli("answers", "add", "--question", ANSWER["question"], "--answer", "答", "--cite", "示例个人所得税法 第三条",
                    "--by", "王芳")
    assert again.output == f'Error: answer {answer_id} already exists: change it with "qa answers edit {answer_id}"\n'
    same = run_cli("answers", "edit", answer_id, "--answer", ANSWER["answer"], "--by", "王芳")
    assert same.output == f"Error: nothing to change: answer {answer_id} already says that\n"
    assert run_cli("answers", "show", "A000").output == 'Error: no answer A000: see "qa answers list"\n'
    assert run_cli("answers", "approve", answer_id, "--by", "王芳").exit_code == 0
    twice = run_cli("answers", "approve", answer_id, "--by", "王芳")
    assert twice.output == f"Error: answer {answer_id} is already approved\n"
    assert run_cli("answers", "add", "--help").output.count("Example:") == 1
    with pytest.raises(NotFound):
        service.retire_answer("A000", by="王芳")
    with pytest.raises(InvalidInput, match="cannot change status"):
        service.edit_answer(answer_id, {"status": "approved"}, by="王芳")


def test_stale_answers_are_listed_when_a_cited_document_is_superseded(make_service, small_laws, run_cli):
    svc = make_service(home=small_laws.parent / "stale-home")
    svc.ingest([small_laws / "示例发票暂行条例(2011-01-08).md"])
    old = svc.add_answer({"question": "可以买发票吗", "answer": "不得非法出售发票。",
                          "citations": [{"doc": "示例发票暂行条例", "article": "第二条"}]}, by="王芳")
    svc.approve_answer(old["id"], by="王芳")
    assert svc.stale_answers() == []
    svc.ingest([small_laws / "示例发票法(2024-12-25).md"])  # abolishes the 暂行条例 from 2026-01-01
    stale = svc.stale_answers()
    assert [a["id"] for a in stale] == [old["id"]]
    assert stale[0]["reasons"] == [
        "示例发票暂行条例 第二条: 示例发票暂行条例(2011-01-08) was superseded on 2026-01-01 by 示例发票法(2024-12-25)"
    ]
    assert svc.answer_detail(old["id"])["needs_review"] == stale[0]["reasons"]
    assert svc.list_answers("approved")[0]["needs_review"] is True
    # After review, the curator cites the new law: no longer stale.
    svc.edit_answer(old["id"], {"citations": [{"doc": "示例发票法", "article": "第二条"}]}, by="王芳")
    assert svc.stale_answers() == []


def test_stale_command_output(run_cli):
    assert run_cli("answers", "stale").output == "no stale answers\n"
    assert json.loads(run_cli("answers", "stale", "--json").output) == []


# ---- import and export ----------------------------------------------------------


def test_an_invalid_row_imports_nothing_unless_skip_invalid(run_cli, service, tmp_path):
    rows = [ANSWER, {**ANSWER, "question": "另一个问题", "citations": [{"doc": "示例个人所得税法", "article": "第九十条"}]}]
    file = write_jsonl(tmp_path / "answers.jsonl", rows)
    file.write_text(file.read_text("utf-8") + "{not json\n", "utf-8")
    result = run_cli("answers", "import", file, "--by", "王芳")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: row 2: cites 示例个人所得税法 第九十条, but 示例个人所得税法(2018-08-31) has no 第九十条",
        "Error: row 3: invalid JSON (Expecting property name enclosed in double quotes)",
        f"Error: {file}: 2 invalid row(s); nothing was imported (fix them or use --skip-invalid)",
    ]
    assert service.list_answers() == []
    skipped = run_cli("answers", "import", file, "--by", "王芳", "--skip-invalid", "--json")
    assert skipped.exit_code == 0
    report = json.loads(skipped.output)
    assert len(report["ids"]) == 1 and len(report["errors"]) == 2
    assert [a["question"] for a in service.list_answers()] == [ANSWER["question"]]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".xlsx"])
def test_export_then_import_changes_nothing(run_cli, service, tmp_path, suffix):
    tricky = {**ANSWER, "question": "@公式开头的答复", "answer": "=百分之二十，不是公式", "effective_from": "2019-01-01",
              "alternatives": ["带,逗号的问法", "带\"引号\"的问法"], "category": "'=本来就带撇号"}
    for data in (ANSWER, tricky):
        service.approve_answer(service.add_answer(data, by="王芳")["id"], by="王芳")
    before = service.list_answers()
    file = tmp_path / f"answers{suffix}"
    assert run_cli("answers", "export", file).output == f"wrote 2 answer(s) to {file}\n"
    result = json.loads(run_cli("answers", "import", file, "--by", "李明", "--json").output)
    assert (result["created"], result["updated"], len(result["unchanged"])) == ([], [], 2)
    assert service.list_answers() == before


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".xlsx"])
def test_qa_ingest_reads_an_export_of_any_format_into_another_knowledge_base(run_cli, service, make_service, small_laws,
                                                                           tmp_path, suffix):
    service.approve_answer(service.add_answer(ANSWER, by="王芳")["id"], by="王芳")
    file = tmp_path / f"answers{suffix}"
    run_cli("answers", "export", file)
    other = make_service(home=tmp_path / "other")
    report = other.ingest([small_laws, file])
    assert report.errors == [] and len(report.answers) == 1
    (stored,) = other.list_answers()
    assert (stored["question"], stored["alternatives"], stored["status"]) == (ANSWER["question"], ANSWER["alternatives"], "approved")


def test_a_csv_export_holds_no_cell_a_spreadsheet_would_run(run_cli, service, tmp_path):
    hostile = {**ANSWER, "question": '=HYPERLINK("http://example.com/x", "点这里")', "answer": "+1-2", "category": "-个税",
               "alternatives": ["@SUM(A1:A9)"]}
    service.add_answer(hostile, by="王芳")
    file = tmp_path / "answers.csv"
    run_cli("answers", "export", file)
    rows = list(csv.reader(io.StringIO(file.read_text("utf-8-sig"), newline="")))
    cells = [cell for row in rows[1:] for cell in row if cell]
    assert not [cell for cell in cells if cell[0] in "=+-@\t\r"]
    assert "'=HYPERLINK(\"http://example.com/x\", \"点这里\")" in cells and "'+1-2" in cells
    (ingested,) = read_answers(file)  # qa ingest reads the export as it was written
    assert (ingested.question, ingested.answer, ingested.alternatives) == (hostile["question"], "+1-2", ["@SUM(A1:A9)"])


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".xlsx"])
def test_an_import_file_with_more_rows_than_any_knowledge_base_is_refused_while_reading(run_cli, service, tmp_path,
                                                                                          monkeypatch, suffix):
    import qa_engine.answer_files

    monkeypatch.setattr(qa_engine.answer_files, "MAX_ROWS", 4)
    file = tmp_path / f"answers{suffix}"
    qa_engine.answer_files.write_rows(file, [{**ANSWER, "id": "", "status": "", "version": "", "question": f"问题{n}",
                                              "alternatives": [], "citations": ANSWER["citations"],
                                              "effective_from": None, "effective_to": None, "category": ""}
                                             for n in range(5)])
    result = run_cli("answers", "import", file, "--by", "王芳")
    assert (result.exit_code, result.output) == (1, f"Error: {file}: more than 4 rows; import the answers in smaller files\n")
    assert service.list_answers() == []


def test_a_workbook_that_unpacks_to_more_than_any_answers_file_is_refused_before_it_is_read(run_cli, service, tmp_path,
                                                                                             monkeypatch):
    import qa_engine.answer_files

    file = tmp_path / "answers.xlsx"
    qa_engine.answer_files.write_rows(file, [])
    monkeypatch.setattr(qa_engine.answer_files, "MAX_UNPACKED_BYTES", 1024)  # as a zip bomb meets the real limit
    result = run_cli("answers", "import", file, "--by", "王芳")
    assert result.exit_code == 1
    assert re.fullmatch(rf"Error: {re.escape(str(file))}: unpacks to 0 MiB \(at most 0 MiB\): not a workbook of answers\n", result.output)


def test_an_import_lists_the_first_twenty_bad_rows_and_counts_the_rest(run_cli, service, tmp_path):
    file = tmp_path / "answers.jsonl"
    file.write_text("".join(json.dumps({**ANSWER, "question": f"问题{n}", "citations": [{"doc": "不存在的法", "article": "第一条"}]},
                                       ensure_ascii=False) + "\n" for n in range(25)), "utf-8")
    result = run_cli("answers", "import", file, "--by", "王芳")
    lines = result.output.splitlines()
    assert len(lines) == 22 and lines[-2] == "Error: 5 more invalid row(s) (--json lists them all)"
    assert lines[-1] == f"Error: {file}: 25 invalid row(s); nothing was imported (fix them or use --skip-invalid)"
    assert len(json.loads(run_cli("answers", "import", file, "--by", "王芳", "--json").output)["errors"]) == 25


def test_imported_edits_keep_status_and_check_the_exported_version(run_cli, service, tmp_path):
    answer_id = service.add_answer(ANSWER, by="王芳")["id"]
    service.approve_answer(answer_id, by="王芳")
    file = tmp_path / "answers.csv"
    run_cli("answers", "export", file)
    file.write_text(file.read_text("utf-8-sig").replace("税率为百分之二十。", "税率为百分之二十，按次计算。"), "utf-8")
    service.edit_answer(answer_id, {"category": "个税"}, by="赵敏")  # someone changed it after the export
    stale = run_cli("answers", "import", file, "--by", "李明")
    assert stale.exit_code == 1
    assert "Error: row 2: answer" in stale.output and "export again and redo the change" in stale.output
    run_cli("answers", "export", file)
    file.write_text(file.read_text("utf-8-sig").replace("税率为百分之二十。", "税率为百分之二十，按次计算。"), "utf-8")
    ok = json.loads(run_cli("answers", "import", file, "--by", "李明", "--json").output)
    assert ok["updated"] == [answer_id]
    shown = service.answer_detail(answer_id)
    assert (shown["status"], shown["version"], shown["answer"]) == ("approved", 4, "偶然所得适用比例税率，税率为百分之二十，按次计算。")


def test_excel_formulas_are_rejected(run_cli, service, tmp_path):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["question", "answer", "citations"])
    sheet.append(["偶然所得交多少税", "=CONCAT(\"百分之\", \"二十\")", "示例个人所得税法 第三条"])
    sheet.append(["中奖交税吗", "百分之二十", "《示例个人所得税法》第三条"])
    file = tmp_path / "answers.xlsx"
    workbook.save(file)
    result = run_cli("answers", "import", file, "--by", "王芳")
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == (
        'Error: row 2: cell B2 holds a formula (=CONCAT("百分之", "二十")); paste values only')
    assert service.list_answers() == []
    skipped = run_cli("answers", "import", file, "--by", "王芳", "--skip-invalid")
    assert skipped.exit_code == 0
    assert skipped.output.splitlines()[0] == "1 added as drafts, 0 updated, 0 unchanged"


def test_bad_files_are_refused_clearly(run_cli, tmp_path):
    assert run_cli("answers", "import", tmp_path / "a.txt", "--by", "王芳").output == (
        f"Error: {tmp_path / 'a.txt'}: unknown format .txt; use a .jsonl, .csv or .xlsx file\n")
    assert run_cli("answers", "import", tmp_path / "a.csv", "--by", "王芳").output == f"Error: {tmp_path / 'a.csv'}: no such file\n"
    broken = tmp_path / "broken.xlsx"
    broken.write_text("not a workbook")
    assert "cannot read it as an Excel .xlsx workbook" in run_cli("answers", "import", broken, "--by", "王芳").output
    header = tmp_path / "header.csv"
    header.write_text("question,answer\n问,答\n", "utf-8")
    assert run_cli("answers", "import", header, "--by", "王芳").output == (
        f"Error: {header}: missing column(s) citations in row 1\n")


def test_an_answer_says_how_it_understood_a_question_with_a_misheard_term_put_right(run_cli):
    explained = json.loads(run_cli("hit-test", "藕然所得交多少税", "--json").output)
    assert explained["understood_as"] == "偶然所得交多少税"
    asked = json.loads(run_cli("ask", "藕然所得交多少税", "--json", "--dry-run").output)
    assert asked["understood_as"] == "偶然所得交多少税" and asked["question"] == "藕然所得交多少税"
    assert "理解为: 偶然所得交多少税" in run_cli("ask", "藕然所得交多少税", "--dry-run").output
    plain = json.loads(run_cli("ask", "偶然所得交多少税？", "--json", "--dry-run").output)
    assert "understood_as" not in plain, "only a put-right question says how it was understood"
