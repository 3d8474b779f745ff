"""Approved answers in the files curators use: JSONL, CSV and Excel (.xlsx).

In CSV and Excel one answer is one row; alternatives are separated by ``|`` and citations
by ``;`` (``个人所得税法 第六条; 个人所得税法实施条例 第六条``). Excel cells holding a formula
are rejected (paste values instead): a formula's cached value may be missing or out of date,
so reading it would silently import something nobody saw. Exports write every cell as text,
so an answer beginning with ``=`` stays text, and an export imports back unchanged. CSV has no
cell types: there a cell a spreadsheet would run is written after an apostrophe (to_csv_cell).
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import date, datetime
from pathlib import Path

from .corpus import ANSWER_SUFFIXES, ApprovedAnswer, answer_from_dict, parse_citation_list, read_text
from .curation import EXPORT_COLUMNS
from .errors import InvalidInput, ParseError, QAError

MAX_ROWS = 50_000  # answers in one file: a knowledge base holds a few thousand; more means the wrong file
MAX_UNPACKED_BYTES = 200 * 1024 * 1024  # a workbook's parts, unzipped: a small file can unpack to gigabytes


def file_format(path: Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in ANSWER_SUFFIXES:
        raise InvalidInput(f"{path}: unknown format {suffix or '(none)'}; use a .jsonl, .csv or .xlsx file")
    return suffix


# A CSV cell a spreadsheet would run as a formula is written after an apostrophe, Excel's text mark
# (write_rows), and read back without it. A caller's question can reach an answer
# through the expert queue, so exports must not carry formulas.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def to_csv_cell(text: str) -> str:
    return f"'{text}" if text.lstrip("'").startswith(FORMULA_START) else text


def from_csv_cell(text: str) -> str:
    return text[1:] if text.startswith("'") and text.lstrip("'").startswith(FORMULA_START) else text


# ---- reading ---------------------------------------------------------------------


def read_rows(path: Path) -> tuple[list[tuple[int, dict]], list[dict]]:
    """The answers in a file as (row number, dict), and the rows that could not be read."""
    path = Path(path)
    suffix = file_format(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    if suffix == ".xlsx":
        table = _xlsx_table(path)
    elif suffix == ".csv":
        text = read_text(path)
        table = _csv_table(text, str(path))
    else:
        rows, errors = _jsonl_rows(path)
        table = None
    if table is not None:
        rows, errors = _rows_from_table(table, str(path))
    if not rows and not errors:
        raise ParseError(f"{path}: holds no answers")
    return rows, errors


def read_answers(path: Path) -> list[ApprovedAnswer]:
    """Every answer in a file (what ``qa ingest`` stores), or a ParseError naming the first bad row."""
    rows, errors = read_rows(path)
    if errors:
        raise ParseError(f"{path} {errors[0]['error']}")
    return [answer_from_dict(row, f"{path} row {number}") for number, row in rows]


def _jsonl_rows(path: Path) -> tuple[list[tuple[int, dict]], list[dict]]:
    text = read_text(path)
    rows, errors = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            errors.append({"row": number, "error": f"row {number}: invalid JSON ({exc.msg})"})
        _check_rows(len(rows) + len(errors), str(path))
    return rows, errors


def _csv_table(text: str, where: str) -> list[tuple[int, list]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    table: list[tuple[int, list]] = []
    try:
        for cells in reader:
            table.append((reader.line_num, [from_csv_cell(cell) for cell in cells]))
            _check_rows(len(table) - 1, where)  # the first row is the header
    except csv.Error as exc:
        row = table[-1][0] + 1 if table else 1
        raise ParseError(f"{where} row {row}: not readable as CSV ({exc})") from None
    return table


def _xlsx_table(path: Path) -> list[tuple[int, list]]:
    from zipfile import BadZipFile, ZipFile

    import openpyxl

    table = []
    with open(path, "rb") as handle:  # our handle, so a damaged file is closed whatever openpyxl raises
        try:
            with ZipFile(handle) as archive:  # zipfile reads no member past the size it declares
                unpacked = sum(member.file_size for member in archive.infolist())
            if unpacked > MAX_UNPACKED_BYTES:
                raise ParseError(f"{path}: unpacks to {unpacked // 2**20:,} MiB (at most {MAX_UNPACKED_BYTES // 2**20} MiB): "
                                 "not a workbook of answers")
            workbook = openpyxl.load_workbook(handle, read_only=True, data_only=False)
        except ParseError:
            raise
        except (BadZipFile, OSError, KeyError, ValueError) as exc:
            raise ParseError(f"{path}: cannot read it as an Excel .xlsx workbook ({exc})") from None
        except Exception as exc:  # damaged XML inside the zip: openpyxl lets the parser's own error through
            raise ParseError(f"{path}: the workbook is damaged ({type(exc).__name__}: {exc})") from None
        try:
            sheet = workbook["answers"] if "answers" in workbook.sheetnames else workbook.worksheets[0]
            for number, cells in enumerate(sheet.iter_rows(), start=1):
                values = []
                for cell in cells:
                    if cell.data_type == "f":
                        values.append(_Formula(f"{cell.coordinate} holds a formula ({cell.value}); paste values only"))
                    else:
                        values.append(cell.value)
                table.append((number, values))
                _check_rows(number - 1, str(path))
        except ParseError:
            raise
        except Exception as exc:  # a damaged sheet raises XML, zip or value errors from deep inside openpyxl
            raise ParseError(f"{path} row {len(table) + 1}: the workbook is damaged ({type(exc).__name__}: {exc})") from None
        finally:
            workbook.close()
    return table


def _check_rows(count: int, where: str) -> None:
    if count > MAX_ROWS:
        raise ParseError(f"{where}: more than {MAX_ROWS:,} rows; import the answers in smaller files")


class _Formula(str):
    """A marker for a formula cell, reported as that row's error."""


def _rows_from_table(table: list[tuple[int, list]], where: str) -> tuple[list[tuple[int, dict]], list[dict]]:
    table = [(n, cells) for n, cells in table if any(_text(c) for c in cells)]
    if not table:
        return [], []
    header_number, header = table[0]
    names = [_text(c).lower() for c in header]
    missing = {"question", "answer", "citations"} - set(names)
    if missing:
        raise ParseError(f"{where}: missing column(s) {', '.join(sorted(missing))} in row {header_number}")
    rows, errors = [], []
    for number, cells in table[1:]:
        try:
            raw = dict(zip(names, cells))
            formula = next((c for c in raw.values() if isinstance(c, _Formula)), None)
            if formula is not None:
                raise InvalidInput(f"row {number}: cell {formula}")
            rows.append((number, _answer_from_cells(raw, number)))
        except QAError as exc:
            errors.append({"row": number, "error": str(exc)})
    return rows, errors


def _answer_from_cells(raw: dict, number: int) -> dict:
    data = {name: _text(raw.get(name)) for name in EXPORT_COLUMNS if name in raw}
    data["alternatives"] = [a.strip() for a in data.get("alternatives", "").split("|") if a.strip()]
    data["citations"] = parse_citation_list(data.get("citations", ""), f"row {number}")
    for key in ("effective_from", "effective_to"):
        data[key] = data.get(key) or None
    return data


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


# ---- writing ---------------------------------------------------------------------


def write_rows(path: Path, answers: list[dict]) -> None:
    """Write answers (the export shape), atomically: a failed export leaves no half file."""
    path = Path(path)
    suffix = file_format(path)
    scratch = path.with_name(path.name + ".tmp")
    try:
        if suffix == ".jsonl":
            with open(scratch, "w", encoding="utf-8") as out:
                for answer in answers:
                    out.write(json.dumps(answer, ensure_ascii=False) + "\n")
        elif suffix == ".csv":
            with open(scratch, "w", encoding="utf-8-sig", newline="") as out:  # BOM: Excel reads it as UTF-8
                writer = csv.writer(out)
                writer.writerow(EXPORT_COLUMNS)
                writer.writerows([to_csv_cell(cell) for cell in _cells(a)] for a in answers)
        else:
            _write_xlsx(scratch, answers)
        os.replace(scratch, path)
    except OSError as exc:
        scratch.unlink(missing_ok=True)
        raise InvalidInput(f"{path}: cannot write ({exc.strerror})") from None


def _cells(answer: dict) -> list[str]:
    values = dict(answer)
    values["alternatives"] = " | ".join(answer["alternatives"])
    values["citations"] = "; ".join(f"{c['doc']} {c['article']}" for c in answer["citations"])
    return ["" if values[name] is None else str(values[name]) for name in EXPORT_COLUMNS]


def _write_xlsx(path: Path, answers: list[dict]) -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "answers"
    sheet.append(EXPORT_COLUMNS)
    for answer in answers:
        sheet.append(_cells(answer))
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            cell.data_type = "s"  # text, even when it starts with "="
    workbook.save(path)
