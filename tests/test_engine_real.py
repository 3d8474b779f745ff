"""End to end over the real law corpus, with the real corpus-trained embedder (slow: trains it)."""

from pathlib import Path

import pytest

from qa_engine.config import Settings
from qa_engine.evaluation import evaluate, load_gold
from qa_engine.service import QAService

from conftest import DEV_SET, require_shared

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def laws_service(tmp_path_factory):
    laws = require_shared()
    svc = QAService(Settings.from_env(environ={}, home=tmp_path_factory.mktemp("laws-home")))
    assert svc.ingest([laws]).errors == []
    manifest = svc.build()
    assert manifest["passages"] >= 1177
    yield svc
    svc.store.close()


def ask_laws(svc):
    return lambda item: svc.ask(item["question"], item.get("as_of"), 10, record=False)


def test_engine_beats_the_plain_baseline_on_the_dev_set(laws_service):
    items = load_gold(DEV_SET)
    engine = evaluate(items, ask_laws(laws_service))["overall"]
    baseline_ask = laws_service.baseline().ask
    baseline = evaluate(items, lambda item: baseline_ask(item["question"], item.get("as_of") or "2026-11-27"))["overall"]
    dense = evaluate(items, lambda item: laws_service.ask(item["question"], item.get("as_of"), 10, record=False, channels=("dense",)))["overall"]
    print("engine", engine, "\nbaseline", baseline, "\ndense", dense)
    assert engine["hit@1"] > baseline["hit@1"] + 0.15
    assert engine["mrr@10"] > baseline["mrr@10"] + 0.15
    assert dense["hit@1"] > baseline["hit@1"]  # the dense channel is real, not decoration
    assert engine["superseded_at_top"] == 0
    assert engine["out_of_scope_abstained"] >= 0.8 and engine["complaint_routed"] >= 0.8


def test_routing_on_our_own_questions(laws_service):
    items = load_gold(ROOT / "bench" / "questions" / "routing.jsonl")
    summary = evaluate(items, ask_laws(laws_service))["overall"]
    assert summary["out_of_scope_abstained"] >= 0.8
    assert summary["complaint_routed"] >= 0.9


def test_questions_about_the_past_get_the_rules_of_the_time(laws_service):
    now = laws_service.ask("卖货给个人消费者能开增值税专用发票吗", "2026-11-27", 10, record=False)
    then = laws_service.ask("卖货给个人消费者能开增值税专用发票吗", "2025-06-30", 10, record=False)
    docs_now = {c["doc"] for a in now["answers"] for c in a["citations"]}
    docs_then = {c["doc"] for a in then["answers"] for c in a["citations"]}
    assert "增值税暂行条例(2017-11-19)" not in docs_now
    assert "增值税法(2024-12-25)" not in docs_then
    assert "增值税暂行条例(2017-11-19)" in docs_then


def test_shipped_answers_serve_the_quickstart_question(laws_service, tmp_path):
    embedder = laws_service.retriever().embedder  # the trained model, reused: no second training
    svc = QAService(Settings.from_env(environ={}, home=tmp_path / "home"), embedder=embedder)
    svc.ingest([require_shared()])
    report = svc.ingest([ROOT / "corpus" / "answers"])
    assert report.errors == [] and len(report.answers) >= 40
    svc.build()
    response = svc.ask("年终奖怎么交个税", record=False)
    top = response["answers"][0]
    assert response["route"] == "answer" and top["kind"] == "approved"
    assert {(c["doc"], c["article"]) for c in top["citations"]} >= {("个人所得税法(2018-08-31)", "第三条")}
    assert all(c["status"] == "in_force" for c in top["citations"])
    svc.store.close()
