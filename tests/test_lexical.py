"""BM25 posting lists: top-k, scores of chosen passages and matched terms agree with full scoring."""

import math
from collections import Counter

import numpy as np
import pytest
from scipy import sparse

from qa_engine.lexical import BM25Index, PostingsBuilder, encode_passages


def random_corpus(seed: int, passages: int = 400, vocabulary: int = 60):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(vocabulary)]
    popularity = 1 / np.arange(1, vocabulary + 1)  # a few common words, many rare ones
    popularity /= popularity.sum()
    corpus = [list(rng.choice(words, size=int(rng.integers(0, 30)), p=popularity)) for _ in range(passages)]
    corpus += corpus[:50]  # exact duplicates: equal scores that must be ordered the same way
    return corpus, words, rng


def sorted_by_full_scores(index: BM25Index, query: dict, k: int):
    scores = index.scores(query)
    positive = np.flatnonzero(scores > 0)
    best = positive[np.lexsort((positive, -scores[positive]))][:k]
    return best, scores[best]


@pytest.mark.parametrize("seed", range(8))
def test_rank_equals_sorting_every_score(seed):
    corpus, words, rng = random_corpus(seed)
    index = BM25Index.build(corpus)
    for _ in range(20):
        query = {w: float(rng.choice([1.0, 0.8, 0.4])) for w in rng.choice(words, size=int(rng.integers(1, 12)))}
        query["not-in-the-corpus"] = 1.0
        for k in (1, 10, 100, 1000):
            ranking = index.rank(query, k)
            expected_ids, expected_scores = sorted_by_full_scores(index, query, k)
            np.testing.assert_array_equal(ranking.ids, expected_ids)
            np.testing.assert_array_equal(ranking.scores, expected_scores)


def test_rank_of_nothing():
    index = BM25Index.build([["发票"], ["工资"]])
    for query in ({}, {"不在": 1.0}):
        ranking = index.rank(query, 10)
        assert len(ranking.ids) == 0 and len(ranking.scores) == 0
    assert index.rank({"发票": 1.0}, 0).ids.tolist() == []
    assert index.rank({"发票": 1.0}, 10).ids.tolist() == [0]


def test_score_of_other_passages_equals_full_scores():
    corpus, words, rng = random_corpus(3)
    index = BM25Index.build(corpus)
    query = {w: 1.0 for w in words[:5]} | {w: 0.4 for w in words[30:40]}
    chosen = rng.permutation(len(corpus))[:100]
    np.testing.assert_array_equal(index.rank(query, 10).score_of(chosen), index.scores(query)[chosen])


def test_matched_terms_are_the_query_terms_in_the_passage():
    index = BM25Index.build([["发票", "开具"], ["工资", "发票"], ["税率"]])
    query = {"发票": 1.0, "税率": 0.8, "工资": 0.4, "不在": 1.0}
    assert index.matched_terms(query, 0) == ["发票"]
    assert index.matched_terms(query, 1) == ["发票", "工资"]
    assert index.matched_terms(query, 2) == ["税率"]
    assert index.matched_terms_of(query, [2, 0, 1, 0]) == [["税率"], ["发票"], ["发票", "工资"], ["发票"]]
    assert index.matched_terms_of(query, []) == []


def test_saved_and_loaded_index_scores_the_same(tmp_path):
    corpus, words, _ = random_corpus(5)
    index = BM25Index.build(corpus)
    index.save(tmp_path)
    loaded = BM25Index.load(tmp_path)
    query = {w: 1.0 for w in words[::7]}
    np.testing.assert_array_equal(loaded.scores(query), index.scores(query))
    assert loaded.vocabulary == index.vocabulary and loaded.average_length == index.average_length


def reference_index(corpus: list[list[str]]) -> BM25Index:
    """BM25 computed the plain way, term by term in Python (``encode_passages``), to check the builder."""
    vocabulary = {term: number for number, term in enumerate(sorted({t for terms in corpus for t in terms}))}
    document_frequency = Counter(t for terms in corpus for t in set(terms))
    n = max(len(corpus), 1)
    idf = np.array([math.log(1 + (n - document_frequency[t] + 0.5) / (document_frequency[t] + 0.5)) for t in vocabulary],
                   dtype=np.float32)
    average_length = sum(len(t) for t in corpus) / n or 1.0
    return BM25Index(vocabulary, idf, average_length, encode_passages(corpus, vocabulary, idf, average_length).T.tocsr())


def test_postings_builder_equals_the_build_from_term_lists():
    corpus, _, rng = random_corpus(11)
    builder = PostingsBuilder()
    for first in range(0, len(corpus), 97):  # chunks with their own numbering of terms
        chunk = corpus[first : first + 97]
        vocabulary = sorted({t for terms in chunk for t in terms}, key=lambda t: rng.random())
        ids = {t: i for i, t in enumerate(vocabulary)}
        term_ids = np.array([ids[t] for terms in chunk for t in terms], dtype=np.int32)
        builder.add(vocabulary, term_ids, np.array([len(terms) for terms in chunk]))
    built = builder.finish()
    expected = reference_index(corpus)
    assert built.vocabulary == expected.vocabulary and built.passages == expected.passages
    np.testing.assert_array_equal(built.idf, expected.idf)  # bit for bit: a streamed build answers the same
    assert built.average_length == expected.average_length
    np.testing.assert_array_equal(built.postings.data, expected.postings.data)
    np.testing.assert_array_equal(built.postings.indptr, expected.postings.indptr)
    np.testing.assert_array_equal(built.postings.indices, expected.postings.indices)


def test_postings_builder_with_no_passages():
    index = PostingsBuilder().finish()
    assert index.passages == 0 and index.rank({"发票": 1.0}, 10).ids.tolist() == []


def test_both_ways_of_summing_posting_lists_give_the_same_bits(monkeypatch):
    from qa_engine import lexical

    rng = np.random.default_rng(3)
    matrix = sparse.random(40, 500, density=0.2, format="csr", dtype=np.float32, random_state=rng)
    rows = np.array([7, 3, 30, 3, 12], dtype=np.int64)
    weights = np.array([1.0, 0.8, 0.4, 0.6, 0.4], dtype=np.float32)
    monkeypatch.setattr(lexical, "SCIPY_FROM_ENTRIES", 10**9)
    with_numpy = lexical.weighted_row_sum(matrix, rows, weights)
    monkeypatch.setattr(lexical, "SCIPY_FROM_ENTRIES", 0)
    with_scipy = lexical.weighted_row_sum(matrix, rows, weights)
    assert with_numpy.dtype == with_scipy.dtype == np.float32
    assert np.array_equal(with_numpy, with_scipy)
    assert np.allclose(with_numpy, weights @ matrix[rows].toarray(), rtol=1e-5)
    assert not lexical.weighted_row_sum(matrix, rows[:0], weights[:0]).any()
