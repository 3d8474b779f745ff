"""Text handling details that retrieval relies on."""

import tempfile

from qa_engine.text import jieba_tokenizer


def test_jieba_reads_its_dictionary_cache_or_rebuilds_a_broken_one(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    (tmp_path / "jieba.cache").write_bytes(b"not a cache")
    rebuilt = jieba_tokenizer()  # jieba builds its dictionary from scratch and rewrites the cache
    cached = jieba_tokenizer()
    assert cached.initialized and cached.total == rebuilt.total and cached.FREQ == rebuilt.FREQ
    sentence = "个人所得税专项附加扣除怎么填报"
    assert cached.lcut(sentence) == rebuilt.lcut(sentence) == ["个人所得税", "专项", "附加", "扣除", "怎么", "填报"]


def test_a_question_names_the_tax_terms_it_was_heard_as_and_the_ones_its_words_stand_for():
    from qa_engine.text import Dictionary, TextAnalyzer

    analyzer = TextAnalyzer(Dictionary(terms=[("滞纳金", 30000), ("个人所得税", 30000)], synonyms=[["个人所得税", "个税"]]))
    analyzer.use_homophones(analyzer.homophone_table({"滞纳金"}))
    assert analyzer.analyse("滞纳斤咋算").key_terms == {"滞纳金"}
    assert analyzer.analyse("个税怎么交").key_terms == {"个人所得税"}


def test_a_tax_term_a_transcript_misheard_is_put_right_before_retrieval():
    from qa_engine.text import HOMOPHONE_WEIGHT, Dictionary, TextAnalyzer

    terms = ["关税", "补申报", "契税", "企税", "增值"]
    analyzer = TextAnalyzer(Dictionary(terms=[(term, 30000) for term in terms]))
    analyzer.use_homophones(analyzer.homophone_table(set(terms)))

    query = analyzer.analyse("观税多交了怎么退")
    assert query.text == "关税多交了怎么退"
    assert "关税" in query.words and query.terms["关税"] == 1.0, "the term put right is asked for in full"
    assert "关税" in query.key_terms
    # same syllables, other tones: a different word, not a slip (不申报 is not filing at all)
    assert analyzer.analyse("不申报算偷税吗").text == "不申报算偷税吗"
    # 气税 sounds like 契税 (qi4) and, without tones, like 企税 (qi3): the tones decide
    assert analyzer.analyse("气税怎么交").text == "契税怎么交"
    # a word jieba knows is left as it was heard, though it sounds like a tax term to the tone
    assert analyzer.sounds("增殖") == analyzer.sounds("增值")
    assert analyzer.analyse("细胞增殖很快").text == "细胞增殖很快"
    # the repairs not put right are still asked for, at the homophone weight
    assert ("关税", HOMOPHONE_WEIGHT) in analyzer.expansions("观税多交了怎么退")


def test_a_stretch_put_right_brings_no_sound_alikes_of_what_was_misheard():
    from qa_engine.text import Dictionary, TextAnalyzer

    terms = ["环保税", "报税", "纳税义务"]
    analyzer = TextAnalyzer(Dictionary(terms=[(term, 30000) for term in terms]))
    analyzer.use_homophones(analyzer.homophone_table(set(terms)))
    assert "报税" in {phrase for phrase, _ in analyzer.expansions("环宝税")}, "宝税 alone sounds like 报税"

    query = analyzer.analyse("环宝税的纳税义务什么时候发生")
    assert query.text == "环保税的纳税义务什么时候发生"
    assert "报税" not in query.terms, "宝 was put right as part of 环保税: 报税 was never asked"


def test_putting_right_is_off_without_a_homophone_table():
    from qa_engine.text import Dictionary, TextAnalyzer

    analyzer = TextAnalyzer(Dictionary(terms=[("关税", 30000)]))
    assert analyzer.analyse("观税多交了怎么退").text == "观税多交了怎么退"
