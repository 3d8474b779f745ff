import json
from pathlib import Path

import pytest

from qa_engine.answer_files import read_answers
from qa_engine.corpus import parse_article_questions, parse_law, parse_law_file
from qa_engine.errors import ParseError
from qa_engine.validity import DocumentInfo, derive_validity

from conftest import require_shared

LAW = """# 中华人民共和国示例税法

2020年1月1日 通过

<!-- INFO END -->

## 第一章 总则

第一条 为了规范示例税的征收，制定本法。

第二条 纳税人应当依法纳税。
前款所称纳税人，是指单位和个人。

## 第二章 附则

第三条 本法自2021年1月1日起施行。《中华人民共和国示例税暂行条例》同时废止。
"""


def test_a_law_splits_into_articles_with_chapters():
    doc = parse_law(LAW, "示例税法(2020-01-01)")
    assert doc.title == "中华人民共和国示例税法"
    assert doc.short_title == "示例税法"
    assert [a.article for a in doc.articles] == ["第一条", "第二条", "第三条"]
    assert doc.articles[1].text == "第二条 纳税人应当依法纳税。\n前款所称纳税人，是指单位和个人。"
    assert doc.articles[1].chapter == "第一章 总则"
    assert doc.articles[2].chapter == "第二章 附则"
    assert doc.effective_from == "2021-01-01"
    assert doc.repeals == ["中华人民共和国示例税暂行条例"]


def test_tables_appended_after_the_last_article_are_passages_of_their_own():
    doc = parse_law(
        LAW + "\n附：\n\n示例税税目税额表\n\n续表\n\n示例税税率表二（经营所得适用）\n（注：本表所称所得额是指余额。）\n",
        "示例税法(2020-01-01)",
    )
    assert [a.article for a in doc.articles] == ["第一条", "第二条", "第三条", "示例税税目税额表", "示例税税率表二（经营所得适用）"]
    assert doc.articles[2].text == "第三条 本法自2021年1月1日起施行。《中华人民共和国示例税暂行条例》同时废止。"
    assert doc.articles[4].text == "示例税税率表二（经营所得适用）\n（注：本表所称所得额是指余额。）"
    assert doc.effective_from == "2021-01-01" and doc.repeals == ["中华人民共和国示例税暂行条例"]


def test_a_line_naming_a_form_inside_an_article_stays_in_it():
    doc = parse_law(LAW.replace("第二条 纳税人应当依法纳税。", "第二条 纳税人应当报送：\n（一）纳税申报表\n附："), "示例税法(2020-01-01)")
    assert [a.article for a in doc.articles] == ["第一条", "第二条", "第三条"]
    assert doc.articles[1].text.startswith("第二条 纳税人应当报送：\n（一）纳税申报表\n附：\n")


def test_a_file_without_a_date_in_its_name_takes_the_header_date():
    assert parse_law(LAW, "示例税法").doc == "示例税法(2020-01-01)"


@pytest.mark.parametrize(
    "text, message",
    [
        ("没有标题\n第一条 内容", "no '# <title>' line"),
        ("# 标题\n2020年1月1日\n<!-- INFO END -->\n只有正文，没有条文。", "no articles found"),
        ("# 标题\n<!-- INFO END -->\n第一条 甲\n第一条 乙", "article 第一条 appears twice"),
    ],
)
def test_unparseable_laws_say_why(text, message):
    with pytest.raises(ParseError, match=message):
        parse_law(text, "坏文件(2020-01-01)", source="坏文件.md")


def test_non_utf8_and_binary_files_are_named_in_the_error(tmp_path):
    gbk = tmp_path / "旧编码(2020-01-01).md"
    gbk.write_bytes(LAW.encode("gbk"))
    with pytest.raises(ParseError, match=r"旧编码\(2020-01-01\)\.md: not valid UTF-8"):
        parse_law_file(gbk)
    binary = tmp_path / "binary(2020-01-01).md"
    binary.write_bytes(b"\x89PNG\x00\x00")
    with pytest.raises(ParseError, match="binary"):
        parse_law_file(binary)


def test_answers_from_jsonl_and_csv(tmp_path):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"question": "年终奖怎么交税", "alternatives": ["年底奖金"], "answer": "并入综合所得。", '
                     '"citations": [{"doc": "个人所得税法", "article": "第六条"}]}\n', "utf-8")
    [answer] = read_answers(jsonl)
    assert (answer.question, answer.alternatives, answer.citations[0].article) == ("年终奖怎么交税", ["年底奖金"], "第六条")
    csv_file = tmp_path / "a.csv"
    csv_file.write_text("question,alternatives,answer,citations\n"
                        "年终奖怎么交税,年底奖金|年终加薪,并入综合所得。,个人所得税法 第六条; 个人所得税法实施条例 第六条\n", "utf-8")
    [answer] = read_answers(csv_file)
    assert answer.alternatives == ["年底奖金", "年终加薪"]
    assert [(c.doc, c.article) for c in answer.citations] == [("个人所得税法", "第六条"), ("个人所得税法实施条例", "第六条")]


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", "row 1: invalid JSON"),
        ('{"question": "", "answer": "x", "citations": [{"doc": "a", "article": "第一条"}]}', "row 1: 'question' must be non-empty"),
        ('{"question": "q", "answer": "x", "citations": []}', "'citations' must list"),
        ('{"question": "q", "answer": "x", "citations": [{"doc": "a", "article": "第一条"}], "effective_from": "2026-13-01"}', "must be a date"),
    ],
)
def test_bad_answer_lines_name_the_row(tmp_path, line, message):
    path = tmp_path / "answers.jsonl"
    path.write_text(line, "utf-8")
    with pytest.raises(ParseError, match=message):
        read_answers(path)


def test_validity_of_the_real_laws_is_derived_from_their_texts():
    laws = require_shared()
    documents = [parse_law_file(path) for path in sorted(laws.glob("*.md"))]
    assert len(documents) == 40
    assert sum(len(d.articles) for d in documents) >= 1177
    by_doc = {d.doc: d for d in documents}
    assert by_doc["个人所得税法(2018-08-31)"].title == "中华人民共和国个人所得税法"
    assert by_doc["个人所得税法(2018-08-31)"].articles[5].text.startswith("第六条 应纳税所得额的计算")
    validity = derive_validity(
        [DocumentInfo(d.doc, d.title, d.short_title, d.version_date, d.effective_from, tuple(d.repeals)) for d in documents]
    )
    expectations = {
        "增值税暂行条例(2017-11-19)": ("2026-01-01", "增值税法(2024-12-25)"),
        "契税暂行条例(2019-03-02)": ("2021-09-01", "契税法(2020-08-11)"),
        "印花税暂行条例(2011-01-08)": ("2022-07-01", "印花税法(2021-06-10)"),
        "城市维护建设税暂行条例(2011-01-08)": ("2021-09-01", "城市维护建设税法(2020-08-11)"),
        "资源税暂行条例(2011-09-30)": ("2020-09-01", "资源税法(2019-08-26)"),
        "进出口关税条例(2017-03-01)": ("2024-12-01", "关税法(2024-04-26)"),
        "发票管理办法(2019-03-02)": ("2023-07-20", "发票管理办法(2023-07-20)"),
        "最高人民法院关于审理偷税抗税刑事案件具体应用法律若干问题的解释(2002-11-05)": (
            "2024-03-20",
            "最高人民法院、最高人民检察院关于办理危害税收征管刑事案件适用法律若干问题的解释(2024-03-15)",
        ),
    }
    for doc, (ends, by) in expectations.items():
        assert (validity[doc].effective_to, validity[doc].superseded_by) == (ends, by), doc
    assert validity["增值税法(2024-12-25)"].status("2025-06-30") == "not_yet_in_force"
    assert validity["增值税法(2024-12-25)"].status("2026-11-27") == "in_force"
    assert validity["增值税暂行条例(2017-11-19)"].status("2026-11-27") == "superseded"
    assert validity["增值税暂行条例(2017-11-19)"].status("2025-06-30") == "in_force"
    still_current = [d for d in documents if validity[d.doc].effective_to is None]
    assert len(still_current) == 31


def test_article_questions_are_read_by_document_and_article(tmp_path):
    path = tmp_path / "article_questions.jsonl"
    path.write_text('{"doc": "示例税法(2020-01-01)", "article": "第二条", "questions": [" 谁要交示例税 ", "公司要交吗"]}\n\n', "utf-8")
    assert parse_article_questions(path) == {("示例税法(2020-01-01)", "第二条"): ("谁要交示例税", "公司要交吗")}


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 1: invalid JSON"),
    ('["a list"]', "line 1: expected"),
    ('{"doc": "示例税法(2020-01-01)", "questions": ["谁要交"]}', "line 1: expected"),
    ('{"doc": "示例税法(2020-01-01)", "article": "第二条", "questions": []}', "non-empty list"),
    ('{"doc": "示例税法(2020-01-01)", "article": "第二条", "questions": ["谁要交", 3]}', "non-empty list"),
    ('{"doc": "示例税法(2020-01-01)", "article": "第二条", "questions": ["谁要交"]}\n'
     '{"doc": "示例税法(2020-01-01)", "article": "第二条", "questions": ["公司要交吗"]}', "line 2: 示例税法(2020-01-01) 第二条 is listed twice"),
])
def test_malformed_article_questions_are_refused_with_the_line(tmp_path, line, message):
    path = tmp_path / "article_questions.jsonl"
    path.write_text(line + "\n", "utf-8")
    with pytest.raises(ParseError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_article_questions(path)


def test_the_shipped_article_questions_name_articles_of_the_shared_laws():
    laws = require_shared()
    articles = {(a.doc, a.article) for path in sorted(laws.glob("*.md")) for a in parse_law_file(path).articles}
    shipped = parse_article_questions(Path(__file__).resolve().parent.parent / "corpus" / "article_questions.jsonl")
    assert set(shipped) <= articles
    assert len(shipped) >= 0.95 * len(articles)


def test_our_benchmark_questions_are_not_among_the_article_questions():
    """bench/questions measures retrieval on questions the engine has not been given."""
    root = Path(__file__).resolve().parent.parent
    shipped = {q for questions in parse_article_questions(root / "corpus" / "article_questions.jsonl").values() for q in questions}
    for path in sorted((root / "bench" / "questions").glob("*.jsonl")):
        asked = {json.loads(line)["question"] for line in path.read_text("utf-8").splitlines()}
        assert not asked & shipped, path.name
