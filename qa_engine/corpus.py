"""Reading what curators give us: laws split into articles, approved answers, and the
questions callers ask that each article answers.

A law file looks like the ones in ``shared/corpus/laws``::

    # 中华人民共和国增值税法
    2024年12月25日 第十四届全国人民代表大会常务委员会第十三次会议通过
    <!-- INFO END -->
    ## 第一章 总 则
    第一条 为了健全……

The file stem ``增值税法(2024-12-25)`` is the document id: short title and version date.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import astuple, dataclass, field
from datetime import date
from pathlib import Path

from .errors import ParseError

INFO_END = "<!-- INFO END -->"
ARTICLE_LINE = re.compile(r"^(第[零〇一二三四五六七八九十百千]+条)[\s\u3000]*(.*)$")
NOTICE_ITEM_LINE = re.compile(r"^([一二三四五六七八九十]+)、(.*)$")
CHAPTER_LINE = re.compile(r"^#{2,}\s*(.+?)\s*$")
# After the article that puts a law into force (本法自…施行), 附：/ 附件：/ 附表一 announce an
# appendix, and a table's title line starts it.
APPENDIX_MARKER_LINE = re.compile(r"^附(?:件|表[一二三四五六七八九十]*)?[：:]?$")
TABLE_TITLE_LINE = re.compile(r"^[^。；，：:]{2,40}表[一二三四五六七八九十]*(?:（[^）]*）)?$")
DOC_ID = re.compile(r"^(?P<short>.+)\((?P<date>\d{4}-\d{2}-\d{2})\)$")
CN_DATE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")
EFFECTIVE_SENTENCE = re.compile(r"自(\d{4})年(\d{1,2})月(\d{1,2})日(?:起)?施行")
HEADER_EFFECTIVE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日\s*施行")
TITLE_IN_BRACKETS = re.compile(r"《([^》]+)》")
CITATION = re.compile(r"^《?(.+?)》?\s*(第[零〇一二三四五六七八九十百千]+条)$")
LAW_SUFFIXES = (".md", ".markdown", ".txt")
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_LINE_CHARS = 100_000  # the longest line in the 40 shipped laws has 239; longer means not a text file


@dataclass(frozen=True)
class Article:
    """One article (第X条) of one document version."""

    doc: str
    article: str
    ordinal: int
    text: str
    chapter: str = ""
    section: str = ""

    @property
    def id(self) -> str:
        return f"{self.doc}#{self.article}"


@dataclass
class Document:
    """One version of a law or regulation, as ingested."""

    doc: str
    title: str
    version_date: str
    stated_effective: str | None  # the date the text itself names, if any
    repeals: list[str]  # full titles this document says it abolishes (同时废止)
    articles: list[Article]
    content_hash: str
    source: str = ""

    @property
    def short_title(self) -> str:
        return short_title_of(self.doc)

    @property
    def effective_from(self) -> str:
        """The day this version took effect: the stated date, unless that predates the version."""
        if self.stated_effective and self.stated_effective > self.version_date:
            return self.stated_effective
        return self.version_date


@dataclass(frozen=True)
class Citation:
    doc: str  # a document id, or a short title meaning "the version in force"
    article: str


@dataclass
class ApprovedAnswer:
    """A curated answer to a common question, citing its policy basis."""

    question: str
    answer: str
    citations: list[Citation]
    alternatives: list[str] = field(default_factory=list)
    category: str = ""
    effective_from: str | None = None
    effective_to: str | None = None
    id: str = ""


def short_title_of(doc: str) -> str:
    match = DOC_ID.match(doc)
    return match.group("short") if match else doc


def parse_hash(title: str, version_date: str, stated: str | None, repeals: list[str], articles: list[Article]) -> str:
    """A hash of what the parser made of a law: a file read again is unchanged only if it parses
    the same, so a new version of the parser re-reads files whose bytes have not changed."""
    parsed = [title, version_date, stated, repeals, [astuple(article) for article in articles]]
    return hashlib.sha256(json.dumps(parsed, ensure_ascii=False).encode("utf-8")).hexdigest()


def iter_source_files(paths: list[Path]) -> list[Path]:
    """Expand folders into the law and answer files they hold, sorted for stable ingest."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in LAW_SUFFIXES + ANSWER_SUFFIXES)
            )
        elif path.is_file():
            files.append(path)
        else:
            raise ParseError(f"{path}: no such file or folder")
    return files


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ParseError(f"{path}: file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if b"\x00" in data:
        raise ParseError(f"{path}: looks like a binary file, expected UTF-8 text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"{path}: not valid UTF-8 (byte {exc.start}); convert it, e.g. iconv -f GBK -t UTF-8"
        ) from None
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_LINE_CHARS:
            raise ParseError(f"{path} line {number}: {len(line)} characters on one line (at most {MAX_LINE_CHARS})")
    return text


def parse_law_file(path: Path) -> Document:
    return parse_law(read_text(path), doc_id=path.stem, source=str(path))


def parse_law(text: str, doc_id: str, source: str = "") -> Document:
    """Split a law's text into articles and read its title, dates and repeals."""
    where = source or doc_id
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    title = next((line[2:].strip() for line in lines if line.startswith("# ")), "")
    if not title:
        raise ParseError(f"{where}: no '# <title>' line at the top")
    split_at = next((i for i, line in enumerate(lines) if line.strip() == INFO_END), None)
    if split_at is not None:
        header, body = lines[:split_at], lines[split_at + 1 :]
    else:
        title_at = next(i for i, line in enumerate(lines) if line.startswith("# "))
        header, body = lines[: title_at + 1], lines[title_at + 1 :]

    version_date = _version_date(doc_id, header)
    if version_date is None:
        raise ParseError(
            f"{where}: no version date; name the file '<short title>(YYYY-MM-DD).md' or give a date in its header"
        )
    if not DOC_ID.match(doc_id):
        doc_id = f"{doc_id}({version_date})"

    articles = _split_articles(body, doc_id, where)
    stated = _stated_effective_date(header, articles)
    repeals = _repealed_titles(articles)
    digest = parse_hash(title, version_date, stated, repeals, articles)
    return Document(doc_id, title, version_date, stated, repeals, articles, digest, source)


def _version_date(doc_id: str, header: list[str]) -> str | None:
    match = DOC_ID.match(doc_id)
    if match:
        return _checked_date(match.group("date"))
    dates = [_iso(*m) for line in header for m in CN_DATE.findall(line)]
    return max(dates) if dates else None


def _checked_date(value: str) -> str | None:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        return None


def _iso(year: str, month: str, day: str) -> str:
    return f"{int(year):04d}-{int(month):02d}-{int(day):02d}"


def _split_articles(body: list[str], doc_id: str, where: str) -> list[Article]:
    marker_pattern = ARTICLE_LINE
    if not any(ARTICLE_LINE.match(line.strip()) for line in body):
        marker_pattern = NOTICE_ITEM_LINE  # notices number their items 一、二、 instead of 第X条
    articles: list[Article] = []
    seen: set[str] = set()
    chapter = section = ""
    current: dict | None = None
    after_commencement = False  # past the article that says when the text takes effect (施行)

    def close():
        if current is not None:
            text = "\n".join(current["lines"]).strip()
            articles.append(
                Article(doc_id, current["article"], len(articles) + 1, text, current["chapter"], current["section"])
            )

    for raw_line in body:
        line = raw_line.strip()
        heading = CHAPTER_LINE.match(line)
        if heading:
            name = heading.group(1)
            if re.match(r"^第.+章", name):
                chapter, section = name, ""
            elif re.match(r"^第.+节", name):
                section = name
            else:  # an appendix heading (税目税额表 …): a passage of its own
                close()
                current = {"article": name, "lines": [name], "chapter": chapter, "section": section}
                seen.add(name)
            continue
        if after_commencement and APPENDIX_MARKER_LINE.match(line):
            continue
        if after_commencement and TABLE_TITLE_LINE.match(line):  # a table the law appends: a passage of its own
            close()
            current = {"article": line, "lines": [line], "chapter": chapter, "section": section}
            seen.add(line)
            continue
        match = marker_pattern.match(line)
        if match:
            marker = match.group(1) if marker_pattern is ARTICLE_LINE else f"{match.group(1)}、"
            if marker in seen:
                raise ParseError(f"{where}: article {marker} appears twice")
            seen.add(marker)
            close()
            current = {"article": marker, "lines": [line], "chapter": chapter, "section": section}
            after_commencement = "施行" in line
        elif current is not None and line:
            current["lines"].append(line)
    close()
    if not articles:
        raise ParseError(f"{where}: no articles found (expected lines starting with 第X条)")
    return articles


def _stated_effective_date(header: list[str], articles: list[Article]) -> str | None:
    for line in header:
        match = HEADER_EFFECTIVE.search(line)
        if match:
            return _checked_date(_iso(*match.groups()))
    for article in reversed(articles[-5:]):
        match = EFFECTIVE_SENTENCE.search(article.text)
        if match:
            return _checked_date(_iso(*match.groups()))
    return None


def _repealed_titles(articles: list[Article]) -> list[str]:
    titles: list[str] = []
    for article in articles[-5:]:
        for sentence in re.split(r"[。；]", article.text):
            if "同时废止" not in sentence and "同时失效" not in sentence:
                continue
            before = sentence.split("同时废止")[0].split("同时失效")[0]
            for title in TITLE_IN_BRACKETS.findall(before):
                titles.append(title.replace("〈", "《").replace("〉", "》"))
    return titles


# ---- approved answers -------------------------------------------------------

ANSWER_SUFFIXES = (".jsonl", ".csv", ".xlsx")  # read by answer_files.read_rows


def parse_citation_list(text: str, where: str) -> list[dict]:
    """'个人所得税法 第六条; 《发票管理办法》第二十二条' -> [{'doc': ..., 'article': ...}, ...]"""
    citations = []
    for part in re.split(r"[;；\n]", text):
        part = part.strip()
        if not part:
            continue
        match = CITATION.match(part)
        if match:
            citations.append({"doc": match.group(1).strip(), "article": match.group(2)})
            continue
        pieces = part.rsplit(None, 1)  # an item of a notice: "国务院关于……的通知 一、"
        if len(pieces) != 2:
            raise ParseError(f"{where}: cannot read citation {part!r}; write it as '个人所得税法 第六条'")
        citations.append({"doc": pieces[0].strip("《》 "), "article": pieces[1]})
    return citations


def answer_from_dict(row: dict, where: str) -> ApprovedAnswer:
    if not isinstance(row, dict):
        raise ParseError(f"{where}: expected a JSON object")
    question = row.get("question")
    answer = row.get("answer")
    if not isinstance(question, str) or not question.strip():
        raise ParseError(f"{where}: 'question' must be non-empty text")
    if not isinstance(answer, str) or not answer.strip():
        raise ParseError(f"{where}: 'answer' must be non-empty text")
    alternatives = row.get("alternatives") or []
    if not isinstance(alternatives, list) or not all(isinstance(a, str) for a in alternatives):
        raise ParseError(f"{where}: 'alternatives' must be a list of text")
    raw_citations = row.get("citations") or []
    if not isinstance(raw_citations, list) or not raw_citations:
        raise ParseError(f"{where}: 'citations' must list at least one {{'doc', 'article'}}")
    citations = []
    for item in raw_citations:
        if not isinstance(item, dict) or not isinstance(item.get("doc"), str) or not isinstance(item.get("article"), str):
            raise ParseError(f"{where}: each citation needs text 'doc' and 'article'")
        citations.append(Citation(item["doc"].strip().strip("《》"), item["article"].strip()))
    dates = {}
    for key in ("effective_from", "effective_to"):
        value = row.get(key) or None
        if value is not None and (not isinstance(value, str) or _checked_date(value) is None):
            raise ParseError(f"{where}: {key!r} must be a date YYYY-MM-DD")
        dates[key] = value
    return ApprovedAnswer(
        question=question.strip(),
        answer=answer.strip(),
        citations=citations,
        alternatives=[a.strip() for a in alternatives if a.strip()],
        category=str(row.get("category") or ""),
        id=str(row.get("id") or ""),
        **dates,
    )


def is_answer_file(path: Path) -> bool:
    return path.suffix.lower() in ANSWER_SUFFIXES


def parse_article_questions(path: Path) -> dict[tuple[str, str], tuple[str, ...]]:
    """Curated caller questions by (document id, article): ``corpus/article_questions.jsonl``,
    one ``{"doc": "个人所得税法(2018-08-31)", "article": "第六条", "questions": [...]}`` a line."""
    questions: dict[tuple[str, str], tuple[str, ...]] = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ParseError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) and row[k].strip() for k in ("doc", "article")):
            raise ParseError(f'{where}: expected {{"doc": ..., "article": ..., "questions": [...]}}')
        asked = row.get("questions")
        if not isinstance(asked, list) or not asked or not all(isinstance(q, str) and q.strip() for q in asked):
            raise ParseError(f"{where}: questions must be a non-empty list of texts")
        key = (row["doc"].strip(), row["article"].strip())
        if key in questions:
            raise ParseError(f"{where}: {key[0]} {key[1]} is listed twice")
        questions[key] = tuple(q.strip() for q in asked)
    return questions
