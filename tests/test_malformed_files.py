"""Malformed files for `qa ingest` and `qa answers import`: a clear error naming the file (and
row), and nothing already stored changes."""

from __future__ import annotations

import io
import json
import zipfile

import openpyxl
import pytest

from qa_engine.errors import ParseError, QAError

GOOD_LAW = """# 中华人民共和国示例印花税法

2021年6月10日 第十三届全国人民代表大会常务委员会通过

<!-- INFO END -->

第一条 在中华人民共和国境内书立应税凭证的单位和个人，为印花税的纳税人。

第二条 本法自2022年7月1日起施行。
"""
GOOD_ANSWER = {"question": "偶然所得交多少税", "answer": "百分之二十。",
               "citations": [{"doc": "示例个人所得税法", "article": "第三条"}]}


def snapshot(service) -> dict:
    """Every row of every table: what "nothing changed" means."""
    db = service.store.db
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {t: db.execute(f"SELECT * FROM [{t}] ORDER BY rowid").fetchall() for t in tables}


def xlsx_bytes(rows) -> bytes:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def damaged_sheet_xlsx() -> bytes:
    good = zipfile.ZipFile(io.BytesIO(xlsx_bytes([["question", "answer", "citations"], ["问", "答", "示例个人所得税法 第三条"]])))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for name in good.namelist():
            out.writestr(name, b"<worksheet><sheetData><row" if name.endswith("sheet1.xml") else good.read(name))
    return buffer.getvalue()


LAW_FILES = {
    "empty": (b"", "no '# <title>' line"),
    "binary": (bytes(range(256)) * 4, "looks like a binary file"),
    "gbk": (GOOD_LAW.encode("gbk"), "not valid UTF-8 (byte 2); convert it, e.g. iconv -f GBK -t UTF-8"),
    "truncated mid-character": (GOOD_LAW.encode("utf-8")[:-2], "not valid UTF-8"),
    "truncated before the articles": (GOOD_LAW.encode("utf-8")[:130], "no articles found"),
    "no articles": ("# 示例法\n<!-- INFO END -->\n只有说明，没有条文。\n".encode(), "no articles found"),
    "duplicated article": (GOOD_LAW.replace("第二条", "第一条").encode(), "article 第一条 appears twice"),
    "huge line": (("# 示例法\n<!-- INFO END -->\n第一条 " + "税" * 150_000 + "\n").encode(), "line 3: 150004 characters on one line"),
}


@pytest.mark.parametrize("case", LAW_FILES, ids=list(LAW_FILES))
def test_bad_law_files_are_reported_and_change_nothing(module_service, tmp_path, case):
    data, message = LAW_FILES[case]
    path = tmp_path / "示例印花税法(2021-06-10).md"
    path.write_bytes(data)
    before = snapshot(module_service)
    report = module_service.ingest([path])
    assert len(report.errors) == 1
    assert report.errors[0].startswith(str(path))
    assert message in report.errors[0]
    assert snapshot(module_service) == before


def test_a_bad_file_beside_good_ones_does_not_stop_them(module_service, tmp_path):
    tmp_path = tmp_path / "incoming"
    tmp_path.mkdir()
    (tmp_path / "示例印花税法(2021-06-10).md").write_text(GOOD_LAW, "utf-8")
    (tmp_path / "坏文件(2021-06-10).md").write_bytes(GOOD_LAW.encode("gbk"))
    report = module_service.ingest([tmp_path])
    assert report.added == ["示例印花税法(2021-06-10)"]
    assert len(report.errors) == 1 and "坏文件" in report.errors[0]


ANSWER_FILES = {
    "empty.jsonl": (b"", "holds no answers"),
    "empty.csv": (b"", "holds no answers"),
    "binary.jsonl": (b"\x00\x01\x02\xff" * 100, "looks like a binary file"),
    "gbk.csv": ("question,answer,citations\n偶然所得交多少税,百分之二十,示例个人所得税法 第三条\n".encode("gbk"), "not valid UTF-8"),
    "truncated.jsonl": (json.dumps(GOOD_ANSWER, ensure_ascii=False).encode()[:-10], "row 1: invalid JSON"),
    "wrong columns.csv": ("问题,答复,依据\n偶然所得交多少税,百分之二十,示例个人所得税法 第三条\n".encode(), "missing column(s) answer, citations, question in row 1"),
    "huge field.csv": (("question,answer,citations\n问," + "答" * 99_000 + ",示例个人所得税法 第三条\n").encode(), "holds no answers"),
    "unclosed quote.csv": (("question,answer,citations\n问,\"" + ("答" * 1000 + "\n") * 140).encode(), "row 2: not readable as CSV"),
    "bad citation.jsonl": (json.dumps({**GOOD_ANSWER, "citations": [{"doc": "示例个人所得税法", "article": "第九十九条"}]},
                                      ensure_ascii=False).encode(), "cites 示例个人所得税法 第九十九条"),
}


@pytest.mark.parametrize("name", ANSWER_FILES)
def test_bad_answer_files_on_ingest_are_reported_and_change_nothing(module_service, tmp_path, name):
    data, message = ANSWER_FILES[name]
    path = tmp_path / name
    path.write_bytes(data)
    if name == "huge field.csv":  # a long but readable answer is fine; its citation is what must exist
        message = None
    before = snapshot(module_service)
    report = module_service.ingest([path])
    if message is None:
        assert report.errors == [] and len(report.answers) == 1
        return
    assert len(report.errors) == 1 and report.errors[0].startswith(str(path)) and message in report.errors[0]
    assert snapshot(module_service) == before


def test_a_bad_answer_in_a_file_is_named_and_stored_nowhere(module_service, tmp_path):
    path = tmp_path / "answers.jsonl"
    bad = {**GOOD_ANSWER, "question": "另一个问题", "citations": [{"doc": "示例个人所得税法", "article": "第九十九条"}]}
    path.write_text("\n".join(json.dumps(a, ensure_ascii=False) for a in (GOOD_ANSWER, bad)), "utf-8")
    report = module_service.ingest([path])
    assert report.errors == [f"{path} answer 2: cites 示例个人所得税法 第九十九条, which is not in the knowledge base"]
    assert [a["question"] for a in module_service.list_answers()].count("另一个问题") == 0


IMPORT_FILES = {
    "empty.jsonl": (b"", "holds no answers"),
    "empty.xlsx": (b"", "cannot read it as an Excel .xlsx workbook"),
    "binary.csv": (bytes(range(256)), "looks like a binary file"),
    "gbk.jsonl": (json.dumps(GOOD_ANSWER, ensure_ascii=False).encode("gbk"), "not valid UTF-8"),
    "truncated.xlsx": (xlsx_bytes([["question", "answer", "citations"]])[:-40], "cannot read it as an Excel .xlsx workbook"),
    "damaged sheet.xlsx": (damaged_sheet_xlsx(), "the workbook is damaged"),
    "wrong columns.csv": ("问题,答复\n偶然所得,百分之二十\n".encode(), "missing column(s) answer, citations, question in row 1"),
    "wrong columns.xlsx": (xlsx_bytes([["question", "reply"], ["问", "答"]]), "missing column(s) answer, citations in row 1"),
    "unclosed quote.csv": (("question,answer,citations\n问,\"" + ("答" * 1000 + "\n") * 140).encode(), "row 2: not readable as CSV"),
}


@pytest.mark.parametrize("name", IMPORT_FILES)
def test_bad_import_files_are_refused_and_change_nothing(module_service, tmp_path, name):
    data, message = IMPORT_FILES[name]
    path = tmp_path / name
    path.write_bytes(data)
    before = snapshot(module_service)
    with pytest.raises(ParseError) as error:
        module_service.import_answers(path, by="王芳")
    assert str(error.value).startswith(str(path)) and message in str(error.value)
    assert snapshot(module_service) == before


def test_bad_rows_are_named_and_the_import_changes_nothing(module_service, tmp_path):
    rows = [
        ["question", "answer", "citations"],
        ["偶然所得交多少税", "百分之二十", "示例个人所得税法 第三条"],
        ["公式", "=1+1", "示例个人所得税法 第三条"],
        ["没有依据", "答复", ""],
        ["偶然所得交多少税", "重复的问题", "示例个人所得税法 第三条"],
    ]
    path = tmp_path / "answers.xlsx"
    path.write_bytes(xlsx_bytes(rows))
    before = snapshot(module_service)
    report = module_service.import_answers(path, by="王芳")
    assert not report.applied
    assert [e["row"] for e in report.errors] == [3, 4, 5]
    assert "cell B3 holds a formula" in report.errors[0]["error"]
    assert "'citations' must list at least one" in report.errors[1]["error"]
    assert "same answer as row 2" in report.errors[2]["error"]
    assert snapshot(module_service) == before


def test_cli_names_the_file_for_bad_rows(run_cli, service, tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text(json.dumps(GOOD_ANSWER, ensure_ascii=False) + "\n{\n", "utf-8")
    result = run_cli("answers", "import", path, "--by", "王芳")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: row 2: invalid JSON (Expecting property name enclosed in double quotes)",
        f"Error: {path}: 1 invalid row(s); nothing was imported (fix them or use --skip-invalid)",
    ]
    empty = tmp_path / "empty.csv"
    empty.write_text("", "utf-8")
    assert run_cli("answers", "import", empty, "--by", "王芳").output == f"Error: {empty}: holds no answers\n"


def test_every_bad_file_error_is_a_qa_error(module_service, tmp_path):
    """Whatever the bytes, ingest reports them; nothing escapes as another exception."""
    for index, (data, _) in enumerate([*LAW_FILES.values(), *ANSWER_FILES.values(), *IMPORT_FILES.values()]):
        for suffix in (".md", ".jsonl", ".csv"):
            path = tmp_path / f"f{index}(2020-01-01){suffix}"
            path.write_bytes(data)
            module_service.ingest([path])
        for suffix in (".jsonl", ".csv", ".xlsx"):
            path = tmp_path / f"g{index}{suffix}"
            path.write_bytes(data)
            try:
                module_service.import_answers(path, by="王芳")
            except QAError:
                pass
