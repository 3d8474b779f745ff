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
