import json
import math
import os
import re
import shutil

import pytest

from qa_engine.config import Settings
from qa_engine.errors import IndexNotBuilt, InvalidInput
from qa_engine.index import load_index


def test_ask_returns_the_json_contract(service):
    response = service.ask("偶然所得的税率是多少", as_of="2026-11-27", record=False)
    assert set(response) >= {"question", "as_of", "route", "confidence", "answers"}
    assert response["route"] in {"answer", "expert", "complaint"}
    assert 0.0 <= response["confidence"] <= 1.0
    top = response["answers"][0]
    assert top["rank"] == 1 and top["kind"] == "article"
    assert top["citations"] == [
        {
            "doc": "示例个人所得税法(2018-08-31)",
            "title": "中华人民共和国示例个人所得税法",
            "article": "第三条",
            "status": "in_force",
            "effective_from": "2019-01-01",
            "effective_to": None,
        }
    ]


def test_superseded_articles_are_not_served_for_today(service):
    response = service.ask("虚开发票", as_of="2026-11-27", record=False)
    docs = {c["doc"] for a in response["answers"] for c in a["citations"]}
    assert "示例发票暂行条例(2011-01-08)" not in docs
    assert "示例发票法(2024-12-25)" in docs


def test_past_questions_get_the_instrument_valid_then(service):
    response = service.ask("虚开发票", as_of="2020-05-01", record=False)
    docs = {c["doc"] for a in response["answers"] for c in a["citations"]}
    assert docs >= {"示例发票暂行条例(2011-01-08)"}
    assert "示例发票法(2024-12-25)" not in docs


def test_the_instrument_in_force_changes_on_the_day_the_new_law_takes_effect(service):
    def docs(as_of):
        return {c["doc"] for a in service.ask("虚开发票", as_of=as_of, record=False)["answers"] for c in a["citations"]}

    assert "示例发票暂行条例(2011-01-08)" in docs("2025-12-31") and "示例发票法(2024-12-25)" not in docs("2025-12-31")
    assert "示例发票暂行条例(2011-01-08)" not in docs("2026-01-01") and "示例发票法(2024-12-25)" in docs("2026-01-01")
    assert "示例发票法(2024-12-25)" in docs("9999-12-31")


def test_bad_questions_are_refused_clearly(service):
    for bad in ["", "   ", None, 42, "税" * 5000]:
        with pytest.raises(InvalidInput):
            service.ask(bad, record=False)


def test_asking_before_building_says_what_to_do(make_service, small_laws):
    svc = make_service()
    svc.ingest([small_laws])
    with pytest.raises(IndexNotBuilt, match='run "qa build" first'):
        svc.ask("偶然所得", record=False)


def test_feedback_callbacks_and_complaints_are_stored(service):
    assert service.record_feedback("示例个人所得税法(2018-08-31)#第三条", True) > 0
    ticket = service.request_callback("境外所得怎么申报", "张三", "13800000000")
    assert any(item["id"] == ticket and item["kind"] == "callback" for item in service.store.queue_items())
    case = service.file_complaint("有人卖发票，我要举报")
    assert [c["category"] for c in service.store.complaints() if c["id"] == case] == ["虚开发票"]
    with pytest.raises(InvalidInput):
        service.request_callback("问题", "张三", "not a phone")


def test_ingest_is_idempotent_and_replaces_changed_files(make_service, small_laws):
    svc = make_service()
    first = svc.ingest([small_laws])
    assert len(first.added) == 3 and first.errors == []
    again = svc.ingest([small_laws])
    assert (again.added, again.replaced, len(again.unchanged)) == ([], [], 3)
    law = small_laws / "示例发票法(2024-12-25).md"
    law.write_text(law.read_text("utf-8") + "\n第四条 新增的条文。\n", "utf-8")
    changed = svc.ingest([small_laws])
    assert changed.replaced == ["示例发票法(2024-12-25)"]
    assert svc.store.article("示例发票法(2024-12-25)", "第四条")["text"] == "第四条 新增的条文。"


def test_a_file_the_parser_now_reads_differently_is_replaced(make_service, small_laws, monkeypatch):
    import qa_engine.corpus

    law = small_laws / "示例发票法(2024-12-25).md"
    law.write_text(law.read_text("utf-8") + "\n附：\n\n示例发票税目表\n", "utf-8")
    svc = make_service()
    with monkeypatch.context() as older_parser:  # as a version before appended tables were passages
        older_parser.setattr(qa_engine.corpus, "TABLE_TITLE_LINE", re.compile(r"(?!)"))
        svc.ingest([small_laws])
    assert svc.store.article("示例发票法(2024-12-25)", "示例发票税目表") is None
    report = svc.ingest([small_laws])
    assert report.replaced == ["示例发票法(2024-12-25)"] and len(report.unchanged) == 2
    assert svc.store.article("示例发票法(2024-12-25)", "示例发票税目表")["text"] == "示例发票税目表"


def test_a_bad_file_is_reported_and_loses_nothing(make_service, small_laws, tmp_path):
    svc = make_service()
    svc.ingest([small_laws])
    before = svc.store.counts()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "空文件(2020-01-01).md").write_text("", "utf-8")
    (bad / "示例发票法(2024-12-25).md").write_bytes("# 示例发票法\n<!-- INFO END -->\n第一条 甲".encode("gbk"))
    report = svc.ingest([bad])
    assert len(report.errors) == 2
    assert any("空文件(2020-01-01).md" in e and "no '# <title>' line" in e for e in report.errors)
    assert any("not valid UTF-8" in e for e in report.errors)
    assert svc.store.counts() == before
    assert svc.store.article("示例发票法(2024-12-25)", "第二条") is not None


def test_answers_citing_unknown_articles_are_refused_or_trimmed(make_service, small_laws, tmp_path):
    svc = make_service()
    svc.ingest([small_laws])
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        '{"question": "偶然所得税率", "answer": "百分之二十。", "citations": [{"doc": "示例个人所得税法", "article": "第三条"}, {"doc": "不存在的法", "article": "第一条"}]}\n',
        "utf-8",
    )
    strict = svc.ingest([answers])
    assert strict.answers == [] and "cites 不存在的法 第一条" in strict.errors[0]
    lenient = svc.ingest([answers], skip_invalid=True)
    assert len(lenient.answers) == 1 and lenient.errors == []
    stored = svc.store.answer(lenient.answers[0])
    assert stored["citations"] == [{"doc": "示例个人所得税法", "article": "第三条"}]


def ingest_lottery_answer(service, tmp_path, alternatives=()):
    """An approved answer to 中彩票的钱要交多少税, citing the sample 个人所得税法's 第三条."""
    answer = {"question": "中彩票的钱要交多少税", "alternatives": list(alternatives), "answer": "按偶然所得，税率百分之二十。",
              "citations": [{"doc": "示例个人所得税法", "article": "第三条"}]}
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps(answer, ensure_ascii=False) + "\n", "utf-8")
    service.ingest([answers])


def test_an_approved_answer_comes_first_for_its_own_question(service, tmp_path):
    ingest_lottery_answer(service, tmp_path, alternatives=["彩票中奖交税吗"])
    response = service.ask("中彩票的钱要交多少税", record=False)
    top = response["answers"][0]
    assert (top["kind"], top["text"]) == ("approved", "按偶然所得，税率百分之二十。")
    assert top["citations"][0]["doc"] == "示例个人所得税法(2018-08-31)"
    assert top["citations"][0]["status"] == "in_force"
    assert response["route"] == "answer"
    features = service.explain("彩票中奖交税吗")["confidence_features"]
    assert features["question_cosine"] > 0  # the approved answer's closest phrasing, as for an article's question


def test_curators_answers_are_given_where_the_scope_model_sees_no_tax_question(service, tmp_path, monkeypatch):
    ingest_lottery_answer(service, tmp_path)

    class NothingInScope:
        def in_scope(self, grams):
            return 0.0

    monkeypatch.setattr(service.retriever().index, "scope", NothingInScope())
    assert service.ask("偶然所得税率是多少", record=False)["route"] == "expert"  # an article alone: out of scope
    response = service.ask("中彩票的钱要交多少税", record=False)
    assert response["answers"][0]["kind"] == "approved"
    assert response["route"] == "answer"
    assert response["confidence"] > 0.9


def test_an_approved_answer_jumps_ahead_of_articles_only_when_a_phrasing_is_close_enough(service, tmp_path):
    from dataclasses import replace

    ingest_lottery_answer(service, tmp_path)
    retriever = service.retriever()
    question = "彩票中奖的钱交税吗"
    approved = next(h for h in retriever.search(question, "2026-11-27", 10).hits if h.kind == "approved")
    similarity = approved.phrasing_similarity

    def approved_score(first: float) -> float:
        retriever.weights = replace(retriever.weights, approved_phrasing_first=first)
        return next(h.score for h in retriever.search(question, "2026-11-27", 10).hits if h.kind == "approved")

    assert approved_score(similarity - 0.01) == pytest.approx(approved_score(similarity + 0.01) + 1.0)



def test_an_approved_answer_without_the_kind_of_answer_asked_for_ranks_lower_as_an_article_does(service, tmp_path):
    from dataclasses import replace

    ingest_lottery_answer(service, tmp_path)  # its text gives a rate (税率百分之二十), no deadline
    retriever = service.retriever()

    def approved_score(question: str, mismatch: float) -> float:
        retriever.weights = replace(retriever.weights, answer_type_mismatch=mismatch)
        return next(h.score for h in retriever.search(question, "2026-11-27", 10).hits if h.kind == "approved")

    deadline = "中彩票的钱什么时候交税"
    assert approved_score(deadline, 0.0) == pytest.approx(approved_score(deadline, 0.2) + 0.2)
    rate = "中彩票的钱税率是多少"
    assert approved_score(rate, 0.0) == pytest.approx(approved_score(rate, 0.2))


def test_an_approved_answer_answers_the_kinds_its_text_shows_and_its_phrasings_ask_for(service):
    from qa_engine.corpus import ApprovedAnswer, Citation
    from qa_engine.retrieval import AnswerIndex

    retriever = service.retriever()
    deadline, computation = 1, 2
    basis = [Citation("示例个人所得税法", "第三条")]
    answers = [ApprovedAnswer("个人所得税怎么交", "次月十五日内申报。", basis),  # its text: 日内
               ApprovedAnswer("滞纳金怎么计算", "按日加收万分之五。", basis),  # its question: 计算
               ApprovedAnswer("个人所得税怎么交", "向主管税务机关申报。", basis)]  # neither
    index = AnswerIndex(answers, retriever.analyzer, retriever.index.bm25, retriever.embedder,
                        {"deadline": deadline, "computation": computation})
    assert index.kinds.tolist() == [deadline, computation, 0]

def test_a_phrasing_asking_for_another_kind_of_answer_shares_fewer_key_terms(service):
    from qa_engine.corpus import ApprovedAnswer, Citation
    from qa_engine.retrieval import AnswerIndex

    retriever = service.retriever()
    deadline, refund = 1, 2
    answer = ApprovedAnswer("个人所得税什么时候交", "次月十五日内。", [Citation("示例个人所得税法", "第三条")])
    index = AnswerIndex([answer], retriever.analyzer, retriever.index.bm25, retriever.embedder,
                        {"deadline": deadline, "refund": refund})
    terms = retriever.analyzer.key_terms("个人所得税")
    assert terms and index.key_term_overlap(terms, 0) == pytest.approx([1.0])
    assert index.key_term_overlap(terms, deadline) == pytest.approx([1.0]), "the same kind of answer"
    assert index.key_term_overlap(terms, deadline | refund) == pytest.approx([1.0]), "one kind shared is enough"
    # 个人所得税能退吗 is another question: one more term each side, 2 x 1 / (1 + 1 + 2)
    assert index.key_term_overlap(terms, refund) == pytest.approx([0.5])


def test_an_approved_answer_applies_only_while_an_article_it_cites_is_law(service, tmp_path):
    answers = tmp_path / "answers.jsonl"
    lines = [{"question": "虚开发票会被罚款吗", "answer": "会，由税务机关处以罚款。",
              "citations": [{"doc": "示例发票法", "article": "第二条"}]},  # in force from 2026-01-01
             {"question": "发票可以卖给别人吗", "answer": "不得非法出售发票。",
              "citations": [{"doc": "示例发票暂行条例", "article": "第二条"}]}]  # until 2026-01-01
    answers.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), "utf-8")
    service.ingest([answers])

    def approved(question: str, day: str) -> list[str]:
        return [a["title"] for a in service.ask(question, as_of=day, record=False)["answers"] if a["kind"] == "approved"]

    assert approved("虚开发票会被罚款吗", "2026-06-01")[0] == "虚开发票会被罚款吗"
    assert "虚开发票会被罚款吗" not in approved("虚开发票会被罚款吗", "2025-06-01"), "its law was not yet in force"
    assert approved("发票可以卖给别人吗", "2025-06-01")[0] == "发票可以卖给别人吗"
    assert "发票可以卖给别人吗" not in approved("发票可以卖给别人吗", "2026-06-01"), "its regulation was repealed"


def test_the_confidence_is_the_logistic_model_of_its_six_features(service):
    explained = service.explain("偶然所得税率是多少")
    features, weights = explained["confidence_features"], explained["weights"]
    assert explained["answers"][0]["kind"] == "article"
    assert features["bm25"] == pytest.approx(explained["answers"][0]["channels"]["bm25"], abs=1e-4)
    names = ("cosine", "agreement", "margin", "known_words", "question_cosine", "bm25")
    logit = weights["confidence_bias"] + sum(weights[f"confidence_{name}"] * features[name] for name in names)
    assert explained["confidence"] == pytest.approx(features["in_scope"] / (1 + math.exp(-logit)), abs=1e-4)


def test_complaints_are_routed_to_the_desk_and_recorded(service):
    response = service.ask("饭店不给开发票，我要投诉", record=True)
    assert response["route"] == "complaint"
    assert [c["id"] for c in service.store.complaints()] == [response["case"]]
    assert service.store.counts()["queries_logged"] == 1


def test_complaints_heard_through_a_homophone_are_still_routed(service):
    response = service.ask("窗口工作人员态度太差，我要头诉", record=False)
    assert response["route"] == "complaint"
    assert service.ask("举报人有奖励吗", record=False)["route"] != "complaint"  # asking about the procedure


def test_words_that_only_sound_like_a_complaint_across_syllables_or_tones_are_not_one(service):
    # 税务局报税: ju2 bao4 runs together as "jubao" without tones, but 举报 is ju3 bao4
    for question in ("去税务局报税要带什么材料", "开店以后要去税务局报到吗", "税务局 保密 范围"):
        assert service.ask(question, record=False)["route"] != "complaint", question
    assert service.ask("我要检举他们偷税", record=False)["route"] == "complaint"


def test_a_complaint_word_counts_where_a_word_begins_with_it_not_across_two(service):
    assert service.ask("要定期向税务局报告发票使用情况吗", record=False)["route"] != "complaint"  # 报告|发票 holds 告发
    assert service.ask("我要告发他偷税", record=False)["route"] == "complaint"
    assert service.ask("投诉信怎么写", record=False)["route"] == "complaint"


def test_asking_about_the_reward_or_confidentiality_of_a_report_is_not_filing_one(service):
    assert service.ask("检举偷逃税的奖金是按什么标准发的", record=False)["route"] != "complaint"
    assert service.ask("举报人的信息会保密吗", record=False)["route"] != "complaint"
    assert service.ask("我要举报他偷税，有奖金吗", record=False)["route"] == "complaint"  # says they are filing
    assert service.ask("我举报了他们偷税，能拿奖金吗", record=False)["route"] == "complaint", "reward in another clause"


def test_asking_whether_one_will_be_exposed_is_not_exposing_someone(service):
    assert service.ask("欠税会被公开曝光吗", record=False)["route"] != "complaint"
    assert service.ask("这家店卖假发票，我要曝光他们", record=False)["route"] == "complaint"


def test_articles_without_the_kind_of_answer_asked_for_rank_lower(service):
    from qa_engine.retrieval import Retriever, Weights

    analyzer = service.analyzer()
    assert analyzer.question_types("偶然所得税率是多少") == {"amount"}
    assert analyzer.question_types("发票要在几天内开") == {"deadline"}
    assert analyzer.question_types("你好") == set()

    retriever = service.retriever()
    neutral = Retriever(retriever.index, analyzer, retriever.embedder, Weights(answer_type_mismatch=0.0))
    question = "偶然所得税率是多少"
    penalised = {h.key: h.score for h in retriever.search(question, "2026-11-27", 10).hits}
    plain = {h.key: h.score for h in neutral.search(question, "2026-11-27", 10).hits}
    rate_article = next(k for k in plain if k.endswith("#第三条") and "个人所得税" in k)
    other_article = next(k for k in plain if k.endswith("#第一条") and "个人所得税" in k)
    assert penalised[rate_article] == pytest.approx(plain[rate_article])  # 税率 answers "how much"
    assert penalised[other_article] == pytest.approx(plain[other_article] - Weights().answer_type_mismatch)
    assert retriever.search(question, "2026-11-27", 10).question_types == {"amount"}


@pytest.mark.parametrize("line", ["deadline\t几天", "deadline\t几天\t日内\textra", "\t几天\t日内", "deadline\t|\t日内"])
def test_a_malformed_question_type_line_is_named(tmp_path, line):
    from qa_engine.errors import ParseError
    from qa_engine.text import Dictionary

    (tmp_path / "question_types.tsv").write_text(f"# comment\n\nrate\t税率|几个点\t税率\n{line}\n", "utf-8")
    with pytest.raises(ParseError, match=r"question_types.tsv, line 4"):
        Dictionary.load(tmp_path)
    (tmp_path / "question_types.tsv").write_text("# comment\n\nrate\t税率|几个点\t税率|百分之\n", "utf-8")
    assert Dictionary.load(tmp_path).question_types == [("rate", ["税率", "几个点"], ["税率", "百分之"])]


def test_query_terms_come_in_the_same_order_in_every_process():
    """Terms are summed in their order: an order that followed Python's per-process string
    hashing made the same question score a hair differently from one worker to the next."""
    import subprocess
    import sys

    script = (
        "from pathlib import Path; from qa_engine.text import Dictionary, TextAnalyzer;"
        "a = TextAnalyzer(Dictionary.load(Path('corpus/dictionary')));"
        "print(list(a.query_terms('个税专票汇算小规模城建税怎么办')))"
    )
    runs = {
        subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONHASHSEED": str(seed)},
                       capture_output=True, text=True, check=True).stdout
        for seed in (1, 2, 3)
    }
    assert len(runs) == 1


def test_article_questions_make_an_article_findable_in_callers_words(make_service, small_laws, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(Settings().corpus_dir / "dictionary", corpus / "dictionary")
    question = "帮朋友弄点报销用的单子犯法吗"
    svc = make_service(corpus_dir=corpus)
    assert svc.ingest([small_laws]).errors == []
    first_build = svc.build()
    before = svc.ask(question, record=False)["answers"][0]["citations"][0]
    (corpus / "article_questions.jsonl").write_text(json.dumps(
        {"doc": "示例发票法(2024-12-25)", "article": "第二条", "questions": [question]}, ensure_ascii=False) + "\n", "utf-8")
    manifest = svc.build()
    after = svc.ask(question, record=False)["answers"][0]["citations"][0]
    assert (before["doc"], before["article"]) != ("示例发票法(2024-12-25)", "第二条")
    assert (after["doc"], after["article"]) == ("示例发票法(2024-12-25)", "第二条")
    passage = next(p for p in svc.passages() if p.id == "示例发票法(2024-12-25)#第二条")
    assert passage.questions == (question,)
    assert load_index(svc.home).questions.index.ntotal == 1
    assert manifest["corpus_hash"] != first_build["corpus_hash"]


def test_a_malformed_article_questions_file_stops_the_build_and_keeps_the_index(make_service, small_laws, tmp_path):
    from qa_engine.errors import ParseError

    corpus = tmp_path / "corpus"
    shutil.copytree(Settings().corpus_dir / "dictionary", corpus / "dictionary")
    svc = make_service(corpus_dir=corpus)
    assert svc.ingest([small_laws]).errors == []
    before = svc.build()["build_id"]
    (corpus / "article_questions.jsonl").write_text('{"doc": "示例发票法(2024-12-25)", "article": "第二条"}\n', "utf-8")
    with pytest.raises(ParseError, match="article_questions.jsonl line 1: questions must be a non-empty list"):
        svc.build()
    assert load_index(svc.home).build_id == before


def _clock_at(instant):
    """A datetime class whose now() is ``instant`` (aware), in whatever zone is asked for."""
    from datetime import datetime

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return instant.astimezone(tz) if tz else instant.replace(tzinfo=None)

    return Clock


def test_today_and_due_dates_are_chinas_whatever_the_servers_clock_zone(service, monkeypatch):
    from datetime import datetime, timezone

    import qa_engine.service as service_module

    new_year_in_beijing = datetime(2025, 12, 31, 17, 0, tzinfo=timezone.utc)  # 2026-01-01 01:00 in Beijing
    monkeypatch.setattr(service_module, "datetime", _clock_at(new_year_in_beijing))
    assert service.today() == "2026-01-01"
    answer = service.ask("虚开发票怎么处罚", record=False)
    assert answer["as_of"] == "2026-01-01"
    cited = {c["doc"]: c["status"] for a in answer["answers"] for c in a["citations"]}
    assert cited.get("示例发票暂行条例(2011-01-08)") in (None, "superseded") and "示例发票法(2024-12-25)" in cited

    friday_night = datetime(2026, 11, 27, 20, 0, tzinfo=timezone.utc)  # already Saturday 04:00 in Beijing
    monkeypatch.setattr(service_module, "datetime", _clock_at(friday_night))
    item = service.request_callback("股票期权怎么交税", "王先生", "13812345678")
    due = service.store.db.execute("SELECT due_at FROM queue WHERE id = ?", [item]).fetchone()[0]
    assert due == "2026-11-30T20:00:00Z"  # Tuesday 04:00 in Beijing: two working days, Monday and Tuesday
