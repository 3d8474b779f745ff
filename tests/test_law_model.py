import json

import numpy as np
import pytest

from qa_engine.index import load_index
from qa_engine.law_model import LawModel
from qa_engine.retrieval import Retriever, Weights
from qa_engine.scope import gram_buckets

INCOME_TAX = ["工资要交个税吗", "年终奖怎么交个人所得税", "稿费要不要交个税", "中彩票的奖金交多少个税",
              "劳务报酬个税怎么扣", "公司发的过节费交不交个税"]
INVOICES = ["收款不给开发票怎么办", "发票可以找别人代开吗", "买东西商家不开票能举证吗", "虚开发票会怎么处理",
            "发票丢了还能补开吗", "收据能代替发票报销吗"]


def test_the_law_model_names_the_law_of_questions_it_has_not_seen():
    model = LawModel.train(INCOME_TAX + INVOICES, ["个人所得税法"] * len(INCOME_TAX) + ["发票管理办法"] * len(INVOICES))
    assert model.laws == ["个人所得税法", "发票管理办法"]
    for question, law in [("奖金交个税吗", "个人所得税法"), ("商家不给开发票", "发票管理办法")]:
        probabilities = model.probabilities(gram_buckets(question))
        assert probabilities.sum() == pytest.approx(1.0)
        assert model.laws[int(probabilities.argmax())] == law


def test_a_saved_law_model_reads_back_the_same(tmp_path):
    laws = ["个人所得税法"] * len(INCOME_TAX) + ["发票管理办法"] * 3 + ["增值税法"] * 3
    model = LawModel.train(INCOME_TAX + INVOICES, laws)
    model.save(tmp_path / "laws.npz")
    loaded = LawModel.load(tmp_path / "laws.npz")
    assert loaded.laws == model.laws
    grams = gram_buckets("年终奖发票")
    assert np.array_equal(loaded.probabilities(grams), model.probabilities(grams))


def test_questions_of_one_law_train_no_model():
    assert LawModel.train(INCOME_TAX, ["个人所得税法"] * len(INCOME_TAX)) is None


@pytest.fixture
def law_service(make_service, small_laws, tmp_path):
    """The small laws built with curated questions for two of them."""
    corpus = tmp_path / "corpus"
    (corpus / "dictionary").mkdir(parents=True)
    rows = [{"doc": "示例个人所得税法(2018-08-31)", "article": "第二条", "questions": INCOME_TAX},
            {"doc": "示例发票法(2024-12-25)", "article": "第一条", "questions": INVOICES}]
    (corpus / "article_questions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    svc = make_service(corpus_dir=corpus)
    assert svc.ingest([small_laws]).errors == []
    svc.build()
    return svc


def test_the_build_trains_the_law_model_and_retrieval_adds_its_probability_to_each_law(law_service):
    svc = law_service
    index = load_index(svc.home)
    assert index.laws.laws == ["示例个人所得税法", "示例发票法"]

    question = "商家收了钱不给开发票"
    with_prior = Retriever(index, svc.analyzer(), svc._embedder).search(question, "2026-11-27", 20)
    without = Retriever(index, svc.analyzer(), svc._embedder, Weights(law_prior=0.0)).search(question, "2026-11-27", 20)
    probability = dict(zip(index.laws.laws, index.laws.probabilities(gram_buckets(with_prior.understood_as))))
    assert probability["示例发票法"] > 0.5
    before = {hit.key: hit.score for hit in without.hits}
    gained = {hit.key.split("#")[0]: hit.score - before[hit.key] for hit in with_prior.hits}
    assert gained["示例发票法(2024-12-25)"] > 0.5 * Weights().law_prior > 0
    for hit in with_prior.hits:
        law = hit.key.split("(")[0]
        assert hit.score == pytest.approx(before[hit.key] + Weights().law_prior * probability.get(law, 0.0))


def test_hit_test_shows_the_laws_the_model_finds_likeliest(law_service, monkeypatch):
    from click.testing import CliRunner

    import qa_engine.cli

    explained = law_service.explain("商家收了钱不给开发票")
    assert [law["law"] for law in explained["laws"]] == ["示例发票法", "示例个人所得税法"]
    assert explained["laws"][0]["probability"] > 0.5
    monkeypatch.setattr(qa_engine.cli, "service", lambda ctx: law_service)
    shown = CliRunner().invoke(qa_engine.cli.cli, ["hit-test", "商家收了钱不给开发票"], catch_exceptions=False).output
    assert f"所属法律 (法律模型): 示例发票法({explained['laws'][0]['probability']:.2f}), 示例个人所得税法(" in shown
