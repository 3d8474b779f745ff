"""The curation commands: `qa answers`, `qa queue`, `qa complaints`, `qa terms`, `qa synonyms`,
`qa report` and `qa keys`. Each parses its input, calls one QAService method and prints the result.
Registered on the `qa` group by ``register(cli)`` at the end of cli.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

BY = click.option("--by", envvar="QA_USER", default="", help="Who makes the change (default $QA_USER); required.")
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
SHOWN_ERRORS = 20  # an import's invalid rows printed; --json has them all


def _service(ctx):
    from .cli import service

    return service(ctx)


def _emit(data) -> None:
    click.echo(json.dumps(data, ensure_ascii=False))


def _citations(values: tuple[str, ...]) -> list[dict] | None:
    from .corpus import parse_citation_list

    if not values:
        return None
    return [c for value in values for c in parse_citation_list(value, "--cite")]


def _answer_line(a: dict) -> str:
    review = "  [needs review]" if a.get("needs_review") else ""
    return f"{a['id']}  {a['status']:<8} v{a['version']}  {a['question']}{review}"


def _print_answer(a: dict) -> None:
    click.echo(f"{a['id']}  ({a['status']}, version {a['version']}, by {a['updated_by']} at {a['updated_at']})")
    click.echo(f"问题: {a['question']}")
    if a["alternatives"]:
        click.echo(f"其他问法: {' | '.join(a['alternatives'])}")
    click.echo(f"答复: {a['answer']}")
    click.echo("依据: " + "; ".join(f"{c['doc']} {c['article']}" for c in a["citations"]))
    if a["category"]:
        click.echo(f"类别: {a['category']}")
    if a["effective_from"] or a["effective_to"]:
        click.echo(f"有效期: {a['effective_from'] or '…'} 至 {a['effective_to'] or '…'}")
    if a.get("queue_id"):
        click.echo(f"来自专家队列: {a['queue_id']}")
    for reason in a.get("needs_review") or []:
        click.echo(f"needs review: {reason}")


# ---- qa answers --------------------------------------------------------------------


@click.group()
def answers():
    """Approved answers: add, edit, approve, retire, import and export, with full history.

    \b
    Example:
        qa answers list --status draft
    """


def _answer_fields(question, answer, alt, cite, category, effective_from, effective_to) -> dict:
    return {
        "question": question,
        "answer": answer,
        "alternatives": list(alt) if alt else None,
        "citations": _citations(cite),
        "category": category,
        "effective_from": effective_from,
        "effective_to": effective_to,
    }


def answer_options(required: bool):
    def decorate(command):
        for option in reversed([
            click.option("--question", required=required, help="The question as callers ask it."),
            click.option("--answer", required=required, help="The answer text."),
            click.option("--alt", multiple=True, help="Another phrasing of the question (repeatable)."),
            click.option("--cite", multiple=True, required=required,
                         help="A citation '个人所得税法 第六条' (repeatable, or ';'-separated)."),
            click.option("--category", help="Category / tax type, e.g. 个人所得税."),
            click.option("--from", "effective_from", help="First day the answer applies (YYYY-MM-DD)."),
            click.option("--to", "effective_to", help="First day it no longer applies (YYYY-MM-DD)."),
        ]):
            command = option(command)
        return command

    return decorate


@answers.command("add")
@answer_options(required=True)
@BY
@AS_JSON
@click.pass_context
def answers_add(ctx, question, answer, alt, cite, category, effective_from, effective_to, by, as_json):
    """Add a draft answer (a curator approves it before it is served).

    \b
    Example:
        qa answers add --question "年终奖怎么交个税" --answer "……" --cite "个人所得税法 第六条" --by 王芳
    """
    fields = _answer_fields(question, answer, alt, cite, category, effective_from, effective_to)
    result = _service(ctx).add_answer({k: v for k, v in fields.items() if v is not None}, by)
    if as_json:
        _emit(result)
    else:
        click.echo(f"added draft {result['id']} (version {result['version']})")


@answers.command("edit")
@click.argument("answer_id")
@answer_options(required=False)
@click.option("--expect-version", type=int, help="Refuse if the answer is no longer at this version (someone else changed it).")
@BY
@AS_JSON
@click.pass_context
def answers_edit(ctx, answer_id, question, answer, alt, cite, category, effective_from, effective_to, expect_version, by, as_json):
    """Change an answer: a new version, same status. --alt and --cite replace the whole list.

    \b
    Example:
        qa answers edit A1b2c3d4e5 --answer "……" --expect-version 2 --by 王芳
    """
    changes = _answer_fields(question, answer, alt, cite, category, effective_from, effective_to)
    result = _service(ctx).edit_answer(answer_id, changes, by, expect_version)
    if as_json:
        _emit(result)
    else:
        click.echo(f"{answer_id} is now version {result['version']} ({result['status']})")


@answers.command("show")
@click.argument("answer_id")
@AS_JSON
@click.pass_context
def answers_show(ctx, answer_id, as_json):
    """Show one answer, and why it needs review if it does.

    \b
    Example:
        qa answers show A1b2c3d4e5
    """
    result = _service(ctx).answer_detail(answer_id)
    if as_json:
        _emit(result)
    else:
        _print_answer(result)


@answers.command("list")
@click.option("--status", type=click.Choice(["draft", "approved", "retired"]), help="Only answers with this status.")
@click.option("--category", help="Only answers in this category.")
@AS_JSON
@click.pass_context
def answers_list(ctx, status, category, as_json):
    """List answers (id, status, version, question).

    \b
    Example:
        qa answers list --status draft
    """
    result = _service(ctx).list_answers(status, category)
    if as_json:
        _emit(result)
    else:
        for a in result:
            click.echo(_answer_line(a))


@answers.command("approve")
@click.argument("answer_id")
@click.option("--expect-version", type=int, help="Refuse if the answer is no longer at this version.")
@BY
@AS_JSON
@click.pass_context
def answers_approve(ctx, answer_id, expect_version, by, as_json):
    """Approve a draft: it is served by `qa ask` and the API within seconds, without a rebuild.

    \b
    Example:
        qa answers approve A1b2c3d4e5 --by 王芳
    """
    result = _service(ctx).approve_answer(answer_id, by, expect_version)
    if as_json:
        _emit(result)
    else:
        click.echo(f"approved {answer_id} (version {result['version']})")


@answers.command("retire")
@click.argument("answer_id")
@click.option("--reason", default="", help="Why it is retired.")
@click.option("--expect-version", type=int, help="Refuse if the answer is no longer at this version.")
@BY
@AS_JSON
@click.pass_context
def answers_retire(ctx, answer_id, reason, expect_version, by, as_json):
    """Stop serving an answer (its history stays).

    \b
    Example:
        qa answers retire A1b2c3d4e5 --reason "政策到期" --by 王芳
    """
    result = _service(ctx).retire_answer(answer_id, by, reason, expect_version)
    if as_json:
        _emit(result)
    else:
        click.echo(f"retired {answer_id} (version {result['version']})")


@answers.command("history")
@click.argument("answer_id")
@AS_JSON
@click.pass_context
def answers_history(ctx, answer_id, as_json):
    """Every version of an answer: who, when, what changed.

    \b
    Example:
        qa answers history A1b2c3d4e5
    """
    result = _service(ctx).answer_history(answer_id)
    if as_json:
        _emit(result)
    else:
        for v in result:
            click.echo(f"v{v['version']}  {v['at']}  {v['by'] or '?'}  {v['status']:<8} {v['change']}")


@answers.command("stale")
@AS_JSON
@click.pass_context
def answers_stale(ctx, as_json):
    """Approved answers citing a document that has since been superseded: review them.

    \b
    Example:
        qa answers stale
    """
    result = _service(ctx).stale_answers()
    if as_json:
        _emit(result)
        return
    for a in result:
        click.echo(f"{a['id']}  {a['question']}")
        for reason in a["reasons"]:
            click.echo(f"    {reason}")
    if not result:
        click.echo("no stale answers")


@answers.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows even if some are invalid.")
@BY
@AS_JSON
@click.pass_context
def answers_import(ctx, file, skip_invalid, by, as_json):
    """Import answers from .jsonl, .csv or .xlsx: new questions become drafts, rows with the id
    (and version) of an existing answer edit it. If any row is invalid nothing changes (unless
    --skip-invalid) and every bad row is reported. Excel formulas are rejected: paste values.

    \b
    Example:
        qa answers import answers.xlsx --by 王芳
    """
    report = _service(ctx).import_answers(file, by, skip_invalid)
    if as_json:
        _emit({"ids": report.ids, "created": report.created, "updated": report.updated,
               "unchanged": report.unchanged, "errors": report.errors, "applied": report.applied})
    else:
        if report.applied:
            click.echo(f"{len(report.created)} added as drafts, {len(report.updated)} updated, "
                       f"{len(report.unchanged)} unchanged")
        for error in report.errors[:SHOWN_ERRORS]:
            click.echo(f"Error: {error['error']}", err=True)
        if len(report.errors) > SHOWN_ERRORS:
            click.echo(f"Error: {len(report.errors) - SHOWN_ERRORS} more invalid row(s) (--json lists them all)", err=True)
        if report.errors and not report.applied:
            click.echo(f"Error: {file}: {len(report.errors)} invalid row(s); nothing was imported "
                       "(fix them or use --skip-invalid)", err=True)
    if report.errors and not report.applied:
        ctx.exit(1)


@answers.command("export")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--status", type=click.Choice(["draft", "approved", "retired"]), help="Only answers with this status.")
@click.pass_context
def answers_export(ctx, file, status):
    """Export answers to .jsonl, .csv or .xlsx (imports back unchanged).

    \b
    Example:
        qa answers export answers.xlsx --status approved
    """
    count = _service(ctx).export_answers(file, status)
    click.echo(f"wrote {count} answer(s) to {file}")


# ---- qa queue ----------------------------------------------------------------------


@click.group()
def queue():
    """The expert queue: questions the engine could not answer, and callback requests.

    \b
    Example:
        qa queue list
    """


def _queue_line(i: dict) -> str:
    late = "  OVERDUE" if i["overdue"] else ""
    who = f"  [{i['claimed_by']}]" if i["claimed_by"] else ""
    return f"#{i['id']}  {i['status']:<9} x{i['count']}  {i['kind']:<8} due {i['due_at']}{late}{who}  {i['question']}"


@queue.command("list")
@click.option("--status", type=click.Choice(["open", "claimed", "answered", "dismissed", "all"]),
              help="Default: open and claimed items.")
@AS_JSON
@click.pass_context
def queue_list(ctx, status, as_json):
    """List queue items, most asked first (count, due time, overdue).

    \b
    Example:
        qa queue list --json
    """
    result = _service(ctx).queue_items(status)
    if as_json:
        _emit(result)
    else:
        for item in result:
            click.echo(_queue_line(item))


@queue.command("show")
@click.argument("item_id", type=int)
@AS_JSON
@click.pass_context
def queue_show(ctx, item_id, as_json):
    """Show one item with its history and, for callbacks, the contact to call back.

    \b
    Example:
        qa queue show 12
    """
    item = _service(ctx).queue_item(item_id)
    if as_json:
        _emit(item)
        return
    click.echo(_queue_line(item))
    click.echo(f"first seen {item['first_seen']}, last seen {item['last_seen']}, confidence {item['confidence']}")
    if item["contact"]:
        click.echo("contact: " + ", ".join(f"{k} {v}" for k, v in item["contact"].items()))
    if item["answer_id"]:
        click.echo(f"draft answer: {item['answer_id']}")
    for event in item["history"]:
        click.echo(f"  {event['at']}  {event['by']}  {event['event']}")


@queue.command("overdue")
@AS_JSON
@click.pass_context
def queue_overdue(ctx, as_json):
    """Open or claimed items past their due time.

    \b
    Example:
        qa queue overdue
    """
    result = _service(ctx).overdue_queue_items()
    if as_json:
        _emit(result)
    else:
        for item in result:
            click.echo(_queue_line(item))


@queue.command("claim")
@click.argument("item_id", type=int)
@BY
@click.pass_context
def queue_claim(ctx, item_id, by):
    """Claim an item so no other expert works on it.

    \b
    Example:
        qa queue claim 12 --by 李明
    """
    _service(ctx).claim_queue_item(item_id, by)
    click.echo(f"#{item_id} claimed by {by}")


@queue.command("answer")
@click.argument("item_id", type=int)
@click.option("--question", help="The question to answer (default: the queued wording).")
@click.option("--answer", required=True, help="The answer text.")
@click.option("--alt", multiple=True, help="Another phrasing of the question (repeatable).")
@click.option("--cite", multiple=True, required=True, help="A citation '个人所得税法 第六条' (repeatable).")
@click.option("--category", help="Category / tax type.")
@BY
@AS_JSON
@click.pass_context
def queue_answer(ctx, item_id, question, answer, alt, cite, category, by, as_json):
    """Answer a queued question: writes a draft answer linked to the item for a curator to approve.

    \b
    Example:
        qa queue answer 12 --answer "……" --cite "个人所得税法 第一条" --by 李明
    """
    data = {"question": question, "answer": answer, "alternatives": list(alt), "citations": _citations(cite),
            "category": category}
    result = _service(ctx).answer_queue_item(item_id, data, by)
    if as_json:
        _emit(result)
    else:
        click.echo(f"#{item_id} answered: draft {result['answer']['id']}; approve it with "
                   f"qa answers approve {result['answer']['id']}")


@queue.command("dismiss")
@click.argument("item_id", type=int)
@click.option("--reason", required=True, help="Why (duplicate, not a tax question, ...).")
@BY
@click.pass_context
def queue_dismiss(ctx, item_id, reason, by):
    """Close an item without answering it.

    \b
    Example:
        qa queue dismiss 12 --reason "与税务无关" --by 李明
    """
    _service(ctx).dismiss_queue_item(item_id, by, reason)
    click.echo(f"#{item_id} dismissed")


# ---- qa complaints -----------------------------------------------------------------


@click.group()
def complaints():
    """The complaint desk: complaints and reports (举报), with contact details and history.

    \b
    Example:
        qa complaints list
    """


def _case_line(c: dict) -> str:
    who = f"  [{c['assigned_to']}]" if c["assigned_to"] else ""
    return f"#{c['id']}  {c['status']:<8} {c['category']:<6} {c['created_at']}{who}  {c['question']}"


@complaints.command("list")
@click.option("--status", type=click.Choice(["open", "assigned", "closed", "all"]), help="Default: cases not closed.")
@click.option("--category", help="Only this category (虚开发票, 不开发票, 偷逃税款, 服务投诉, 其他).")
@AS_JSON
@click.pass_context
def complaints_list(ctx, status, category, as_json):
    """List cases (without contact details).

    \b
    Example:
        qa complaints list --json
    """
    result = _service(ctx).complaint_cases(status, category)
    if as_json:
        _emit(result)
    else:
        for case in result:
            click.echo(_case_line(case))


@complaints.command("show")
@click.argument("case_id", type=int)
@AS_JSON
@click.pass_context
def complaints_show(ctx, case_id, as_json):
    """Show one case with its contact details and history.

    \b
    Example:
        qa complaints show 3
    """
    case = _service(ctx).complaint_case(case_id)
    if as_json:
        _emit(case)
        return
    click.echo(_case_line(case))
    if case["contact"]:
        click.echo("contact: " + ", ".join(f"{k} {v}" for k, v in case["contact"].items()))
    for event in case["history"]:
        click.echo(f"  {event['at']}  {event.get('by', '')}  {event['event']}")


@complaints.command("assign")
@click.argument("case_id", type=int)
@click.option("--to", "to", required=True, help="Who handles the case.")
@BY
@click.pass_context
def complaints_assign(ctx, case_id, to, by):
    """Assign a case to someone.

    \b
    Example:
        qa complaints assign 3 --to 稽查局张科 --by 赵敏
    """
    _service(ctx).assign_complaint(case_id, to, by)
    click.echo(f"#{case_id} assigned to {to}")


@complaints.command("close")
@click.argument("case_id", type=int)
@click.option("--resolution", required=True, help="How it was resolved.")
@BY
@click.pass_context
def complaints_close(ctx, case_id, resolution, by):
    """Close a case with its resolution.

    \b
    Example:
        qa complaints close 3 --resolution "已转稽查局立案" --by 赵敏
    """
    _service(ctx).close_complaint(case_id, by, resolution)
    click.echo(f"#{case_id} closed")


# ---- qa terms / qa synonyms ------------------------------------------------------------


@click.group()
def terms():
    """Words of the tax dictionary used to segment text (applied by the next `qa build`).

    \b
    Example:
        qa terms add 专项附加扣除 --by 王芳
    """


@terms.command("list")
@AS_JSON
@click.pass_context
def terms_list(ctx, as_json):
    """List dictionary words (shipped and curated).

    \b
    Example:
        qa terms list
    """
    result = _service(ctx).dictionary_terms()
    if as_json:
        _emit(result)
    else:
        for t in result:
            click.echo(f"{t['word']}\t{t['freq']}\t{t['source']}")


@terms.command("add")
@click.argument("word")
@click.option("--freq", type=int, help="jieba frequency (default 10000; higher keeps the word whole).")
@BY
@click.pass_context
def terms_add(ctx, word, freq, by):
    """Add a word (or change its frequency).

    \b
    Example:
        qa terms add 留抵退税 --by 王芳
    """
    result = _service(ctx).add_term(word, by, freq)
    click.echo(f"added {result['word']} (freq {result['freq']}); run qa build to apply it")


@terms.command("remove")
@click.argument("word")
@BY
@click.pass_context
def terms_remove(ctx, word, by):
    """Remove a word.

    \b
    Example:
        qa terms remove 留抵退税 --by 王芳
    """
    result = _service(ctx).remove_term(word, by)
    click.echo(f"removed {result['word']}; run qa build to apply it")


@terms.command("history")
@click.argument("word")
@AS_JSON
@click.pass_context
def terms_history(ctx, word, as_json):
    """Every curated change to a word.

    \b
    Example:
        qa terms history 留抵退税
    """
    _print_history(_service(ctx).dictionary_history("term", word), as_json)


def _print_history(rows: list[dict], as_json: bool) -> None:
    if as_json:
        _emit(rows)
        return
    for v in rows:
        click.echo(f"v{v['version']}  {v['at']}  {v['by']}  {v['status']:<7} {v['change']}")


@click.group()
def synonyms():
    """Synonym groups: the law's wording and what callers say (applied by the next `qa build`).

    \b
    Example:
        qa synonyms add 个人所得税 个税 --by 王芳
    """


@synonyms.command("list")
@AS_JSON
@click.pass_context
def synonyms_list(ctx, as_json):
    """List synonym groups.

    \b
    Example:
        qa synonyms list
    """
    result = _service(ctx).synonym_groups()
    if as_json:
        _emit(result)
    else:
        for g in result:
            click.echo(f"{g['canonical']}\t{' '.join(g['variants'])}\t({g['source']})")


@synonyms.command("add")
@click.argument("canonical")
@click.argument("variants", nargs=-1, required=True)
@BY
@click.pass_context
def synonyms_add(ctx, canonical, variants, by):
    """Add variants to the group of CANONICAL (created if new).

    \b
    Example:
        qa synonyms add 全年一次性奖金 年终奖 年底双薪 --by 王芳
    """
    result = _service(ctx).add_synonyms(canonical, list(variants), by)
    click.echo(f"{result['canonical']}: {' '.join(result['variants'])}; run qa build to apply it")


@synonyms.command("remove")
@click.argument("canonical")
@click.argument("variants", nargs=-1)
@BY
@click.pass_context
def synonyms_remove(ctx, canonical, variants, by):
    """Remove variants from a group, or the whole group if no variant is given.

    \b
    Example:
        qa synonyms remove 全年一次性奖金 年底双薪 --by 王芳
    """
    result = _service(ctx).remove_synonyms(canonical, list(variants), by)
    rest = " ".join(result["variants"]) or "(group removed)"
    click.echo(f"{result['canonical']}: {rest}; run qa build to apply it")


@synonyms.command("history")
@click.argument("canonical")
@AS_JSON
@click.pass_context
def synonyms_history(ctx, canonical, as_json):
    """Every curated change to a synonym group.

    \b
    Example:
        qa synonyms history 全年一次性奖金
    """
    _print_history(_service(ctx).dictionary_history("synonym", canonical), as_json)


# ---- qa report ---------------------------------------------------------------------


@click.command()
@click.option("--since", default="7d", show_default=True, help="Period: 7d, 24h, 2w, or a date YYYY-MM-DD.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="HTML report file (default: reports/report-<date>.html under the home folder).")
@AS_JSON
@click.pass_context
def report(ctx, since, out, as_json):
    """Hot questions (clustered by meaning), unanswered clusters, route mix, confidence,
    feedback and satisfaction, most disliked answers, stale answers; prints a summary and
    writes an HTML report with charts.

    \b
    Example:
        qa report --since 7d --out report.html
    """
    from .report import summary_text

    svc = _service(ctx)
    out = out or svc.home / "reports" / f"report-{svc.today()}.html"
    data = svc.report(since, out)
    if as_json:
        _emit(data)
    else:
        click.echo(summary_text(data))
        click.echo(f"\nHTML report: {data['html']}")


# ---- qa log ------------------------------------------------------------------------


@click.group("log")
def log_group():
    """The log of asked questions and their feedback (personal data redacted before it is written).

    \b
    Example:
        qa log prune --older-than 180d
    """


@log_group.command("prune")
@click.option("--older-than", required=True, help="Forget what was logged before this: 180d, 26w, or a date YYYY-MM-DD.")
@AS_JSON
@click.pass_context
def log_prune(ctx, older_than, as_json):
    """Forget the questions and feedback logged before a point in time, to keep the log within a
    retention period (qa report covers what is left). Expert-queue items and complaint cases stay.
    Safe while the server runs: rows go a batch at a time.

    \b
    Example:
        qa log prune --older-than 180d
    """
    result = _service(ctx).prune_log(older_than)
    if as_json:
        _emit(result)
    else:
        click.echo(f"forgot {result['questions']} question(s) and {result['feedback']} feedback entr(ies) logged before {result['before']}")


# ---- qa keys -----------------------------------------------------------------------


@click.group()
def keys():
    """API keys for the agent console and curator endpoints of "qa serve" (only a hash is stored).

    \b
    Example:
        qa keys add desk-07 --role agent --by 王芳
    """


@keys.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["agent", "curator"]), required=True,
              help="agent: the console's search and flags; curator: those and any curator endpoint.")
@BY
@AS_JSON
@click.pass_context
def keys_add(ctx, name, role, by, as_json):
    """Make a key named NAME and print it once: it cannot be shown again.

    \b
    Example:
        qa keys add desk-07 --role agent --by 王芳
    """
    result = _service(ctx).add_key(name, role, by)
    if as_json:
        _emit(result)
    else:
        click.echo(result["key"])
        click.echo(f"key {result['name']} (role {result['role']}) made; copy it now, it is not stored and "
                   "cannot be shown again", err=True)


@keys.command("list")
@AS_JSON
@click.pass_context
def keys_list(ctx, as_json):
    """Every key: name, role, status, made by whom and when, last used (never the key itself).

    \b
    Example:
        qa keys list
    """
    result = _service(ctx).list_keys()
    if as_json:
        _emit(result)
        return
    if not result:
        click.echo('no API keys: make one with "qa keys add NAME --role agent --by WHO"')
    for k in result:
        revoked = f"  revoked {k['revoked_at']} by {k['revoked_by']}" if k["revoked_at"] else ""
        click.echo(f"{k['name']}\t{k['role']}\t{k['status']}\tcreated {k['created_at']} by {k['created_by']}"
                   f"\tlast used {k['last_used_at'] or 'never'}{revoked}")


@keys.command("revoke")
@click.argument("name")
@BY
@click.pass_context
def keys_revoke(ctx, name, by):
    """Revoke the active key named NAME: from now on it gets 401.

    \b
    Example:
        qa keys revoke desk-07 --by 王芳
    """
    result = _service(ctx).revoke_key(name, by)
    click.echo(f"key {result['name']} (role {result['role']}) revoked at {result['revoked_at']}")


def register(cli: click.Group) -> None:
    for command in (answers, queue, complaints, terms, synonyms, report, log_group, keys):
        cli.add_command(command)
