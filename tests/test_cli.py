import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from qa_engine.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def test_ask_json_follows_the_contract(run_cli):
    result = run_cli("ask", "偶然所得的税率是多少", "--json", "--as-of", "2026-11-27")
    assert result.exit_code == 0
    response = json.loads(result.output)
    assert list(response)[:5] == ["question", "as_of", "route", "confidence", "answers"]
    assert response["as_of"] == "2026-11-27"
    citation = response["answers"][0]["citations"][0]
    assert set(citation) == {"doc", "title", "article", "status", "effective_from", "effective_to"}


def test_readable_answer_shows_basis_and_validity(run_cli):
    output = run_cli("ask", "偶然所得的税率是多少", "--dry-run").output
    assert "依据: 《中华人民共和国示例个人所得税法》第三条  [有效，自 2019-01-01]" in output
    assert "置信度" in output


def test_batch_answers_every_line_and_reports_bad_ones(run_cli, service, tmp_path):
    batch = tmp_path / "batch.jsonl"
    batch.write_text(
        '{"id": "q1", "question": "偶然所得税率"}\n'
        '{"id": "q2", "question": "虚开发票", "as_of": "2020-05-01"}\n'
        "not json\n"
        '{"id": "q4", "question": "   "}\n',
        "utf-8",
    )
    before = service.store.counts()
    result = run_cli("ask", "--batch", batch, "--json", "--dry-run")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line.get("id") for line in lines] == ["q1", "q2", None, "q4"]
    assert lines[1]["as_of"] == "2020-05-01"
    assert lines[2]["error"]["code"] == "invalid_json" and lines[2]["line"] == 3
    assert lines[3]["error"] == {"code": "invalid_input", "message": "question is empty"}
    assert result.exit_code == 1
    assert service.store.counts() == before  # --dry-run records nothing


def test_batch_reads_a_bom_and_reports_lines_that_are_not_utf8_or_not_objects_by_number(run_cli, service, tmp_path):
    batch = tmp_path / "batch.jsonl"
    batch.write_bytes('\ufeff{"question": "偶然所得税率"}\n'.encode("utf-8") + b"\xff\xfe bad bytes\n[1, 2]\n"
                      + '{"question": "虚开发票"}\n'.encode("gb18030"))
    result = run_cli("ask", "--batch", batch, "--json", "--dry-run")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["answers"], "a byte order mark does not spoil the first line"
    assert [line.get("line") for line in lines[1:]] == [2, 3, 4]
    assert [line["error"]["message"] for line in lines[1:]] == [
        "the line is not UTF-8 text", 'expected a JSON object such as {"question": "..."}', "the line is not UTF-8 text"]
    assert result.exit_code == 1
    text = run_cli("ask", "--batch", batch, "--dry-run").output
    assert "[line 2] Error: the line is not UTF-8 text" in text


def test_ask_records_unless_dry_run(run_cli, service):
    run_cli("ask", "完全无关的问题：明天会下雨吗", "--dry-run")
    assert service.store.counts()["queries_logged"] == 0
    run_cli("ask", "完全无关的问题：明天会下雨吗")
    assert service.store.counts()["queries_logged"] == 1


def test_errors_are_one_line_with_a_nonzero_exit(tmp_path):
    runner = CliRunner()
    home = str(tmp_path / "empty-home")
    result = runner.invoke(cli, ["--home", home, "ask", "年终奖怎么交个税"])
    assert (result.exit_code, result.output) == (1, 'Error: no index has been built yet: run "qa build" first\n')
    result = runner.invoke(cli, ["--home", home, "build"])
    assert (result.exit_code, result.output) == (1, 'Error: the knowledge base has no articles: run "qa ingest PATH" first\n')
    result = runner.invoke(cli, ["--home", home, "ask", "问题", "--as-of", "2026-02-30"])
    assert result.exit_code == 2 and "Invalid value for '--as-of'" in result.output
    result = runner.invoke(cli, ["--home", home, "ingest", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "missing: no such file or folder" in result.output
    result = runner.invoke(cli, ["--home", home, "show", "不存在的法", "第一条"])
    assert (result.exit_code, result.output) == (1, "Error: no article 不存在的法 第一条 in the knowledge base\n")


def test_show_prints_an_article_with_validity(run_cli):
    output = run_cli("show", "示例发票暂行条例", "第二条", "--as-of", "2026-11-27").output
    assert "《中华人民共和国示例发票暂行条例》第二条  [已废止，自 2011-01-08 至 2026-01-01]" in output


def test_every_command_has_help_with_an_example():
    for name, command in cli.commands.items():
        assert command.help, name
        if not hasattr(command, "commands"):
            assert "qa " in command.help, f"{name} help has no example"


def test_python_cli_py_is_the_same_program():
    result = subprocess.run([sys.executable, "cli.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ingest" in result.stdout and "ask" in result.stdout


def test_validity_shows_and_overrides_with_a_reason(run_cli):
    shown = run_cli("validity", "示例发票暂行条例")
    assert shown.output == "示例发票暂行条例(2011-01-08): 已废止，自 2011-01-08 至 2026-01-01，由 示例发票法(2024-12-25) 取代\n"
    no_note = run_cli("validity", "示例发票暂行条例(2011-01-08)", "--to", "2025-01-01", "--by", "王芳")
    assert (no_note.exit_code, no_note.output) == (1, "Error: give a --note saying why the texts are overridden\n")
    changed = run_cli("validity", "示例发票暂行条例(2011-01-08)", "--to", "2025-01-01", "--note", "提前废止", "--by", "王芳")
    assert changed.output.startswith("示例发票暂行条例(2011-01-08): 已废止，自 2011-01-08 至 2025-01-01")
    assert "人工更正: 提前废止 (王芳," in changed.output
