import json

import pytest

from qa_engine.errors import InvalidInput, NotFound


@pytest.fixture
def corpus_dir(tmp_path):
    folder = tmp_path / "shipped" / "dictionary"
    folder.mkdir(parents=True)
    (folder / "tax_terms.txt").write_text("偶然所得 30000 n\n综合所得 30000 n\n", "utf-8")
    (folder / "synonyms.tsv").write_text("# canonical\tvariants\n综合所得\t工资薪金\n", "utf-8")
    return folder.parent


def test_terms_are_versioned_and_merged_with_the_shipped_dictionary(make_service, corpus_dir, run_cli):
    svc = make_service(corpus_dir=corpus_dir)
    svc.add_term("股票期权", by="王芳")
    svc.remove_term("综合所得", by="王芳")
    assert [(t["word"], t["source"]) for t in svc.dictionary_terms()] == [("偶然所得", "shipped"), ("股票期权", "curated")]
    svc.add_term("综合所得", by="李明", freq=500)
    history = svc.dictionary_history("term", "综合所得")
    assert [(v["version"], v["status"], v["by"], v["change"]) for v in history] == [
        (1, "removed", "王芳", "removed"), (2, "active", "李明", "added with freq 500")]
    with pytest.raises(InvalidInput, match="already in the dictionary"):
        svc.add_term("综合所得", by="李明", freq=500)
    with pytest.raises(NotFound):
        svc.remove_term("不存在的词", by="李明")
    with pytest.raises(InvalidInput, match="one word"):
        svc.add_term("两个 词", by="李明")
    with pytest.raises(InvalidInput, match="--by NAME"):
        svc.add_term("留抵退税", by="")


def test_synonym_groups(make_service, corpus_dir):
    svc = make_service(corpus_dir=corpus_dir)
    svc.add_synonyms("偶然所得", ["中奖", "彩票奖金"], by="王芳")
    svc.add_synonyms("综合所得", ["工资收入"], by="王芳")
    assert {g["canonical"]: (g["variants"], g["source"]) for g in svc.synonym_groups()} == {
        "偶然所得": (["中奖", "彩票奖金"], "curated"), "综合所得": (["工资薪金", "工资收入"], "curated")}
    with pytest.raises(InvalidInput, match="already belongs to the group of 偶然所得"):
        svc.add_synonyms("综合所得", ["中奖"], by="王芳")
    svc.remove_synonyms("偶然所得", ["彩票奖金"], by="李明")
    svc.remove_synonyms("综合所得", [], by="李明")
    assert [(g["canonical"], g["variants"]) for g in svc.synonym_groups()] == [("偶然所得", ["中奖"])]
    with pytest.raises(NotFound):
        svc.remove_synonyms("综合所得", [], by="李明")
    with pytest.raises(InvalidInput, match="has no 奖金"):
        svc.remove_synonyms("偶然所得", ["奖金"], by="李明")


def test_dictionary_changes_apply_on_the_next_build_even_in_a_running_server(make_service, small_laws, corpus_dir):
    server = make_service(corpus_dir=corpus_dir)
    server.ingest([small_laws])
    server.build()
    assert "偶然所得" not in server.explain("中奖怎么交税")["query_terms"]
    curator = make_service(home=server.home, corpus_dir=corpus_dir)
    curator.add_synonyms("偶然所得", ["中奖"], by="王芳")
    assert "偶然所得" not in server.explain("中奖怎么交税")["query_terms"]  # not before the build
    curator.build()
    assert server.explain("中奖怎么交税")["query_terms"]["偶然所得"] == pytest.approx(0.8)


def test_terms_and_synonyms_commands(run_cli):
    assert run_cli("terms", "add", "留抵退税", "--by", "王芳").output == "added 留抵退税 (freq 10000); run qa build to apply it\n"
    assert ("留抵退税", 10000, "curated") in [(t["word"], t["freq"], t["source"])
                                            for t in json.loads(run_cli("terms", "list", "--json").output)]
    assert "留抵退税\t10000\tcurated" in run_cli("terms", "list").output
    assert run_cli("terms", "remove", "留抵退税", "--by", "王芳").exit_code == 0
    assert "v2" in run_cli("terms", "history", "留抵退税").output
    missing = run_cli("terms", "remove", "留抵退税", "--by", "王芳")
    assert (missing.exit_code, missing.output) == (1, 'Error: 留抵退税 is not in the dictionary: see "qa terms list"\n')
    added = run_cli("synonyms", "add", "示例专项扣除", "示例扣项", "样例扣除", "--by", "王芳")
    assert added.output == "示例专项扣除: 示例扣项 样例扣除; run qa build to apply it\n"
    assert "示例专项扣除\t示例扣项 样例扣除\t(curated)" in run_cli("synonyms", "list").output
    removed = run_cli("synonyms", "remove", "示例专项扣除", "--by", "王芳")
    assert removed.output == "示例专项扣除: (group removed); run qa build to apply it\n"
    no_variant = run_cli("synonyms", "add", "示例专项扣除", "--by", "王芳")
    assert no_variant.exit_code == 2
    anonymous = run_cli("synonyms", "add", "示例专项扣除", "示例扣项")
    assert anonymous.output == "Error: say who is making this change: pass --by NAME or set QA_USER\n"
