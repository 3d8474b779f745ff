"""The torch-free static embedder gives the vectors sentence-transformers gives."""

import numpy as np
import pytest

from qa_engine.errors import IndexMismatch
from qa_engine.static_embedder import StaticEmbedder, is_static_model, load_embedder


def test_mean_of_token_vectors_normalised(static_model):
    folder, tokenizer, weights = static_model
    embedder = StaticEmbedder(folder)
    texts = ["个人所得税 工资", "发票", "tax"]
    vectors = embedder.encode(texts)
    for text, vector in zip(texts, vectors):
        expected = weights[tokenizer.encode(text, add_special_tokens=False).ids].mean(axis=0)
        np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), rtol=1e-5, atol=1e-6)
    assert vectors.dtype == np.float32 and embedder.dimension == 8


def test_text_without_tokens_gives_zeros(static_model):
    vectors = StaticEmbedder(static_model[0]).encode(["", "工资"])
    assert not vectors[0].any() and vectors[1].any()


def test_many_texts_are_embedded_in_batches_with_the_same_vectors(static_model, monkeypatch):
    import qa_engine.static_embedder

    embedder = StaticEmbedder(static_model[0])
    texts = [f"个人所得税 工资 {n}" if n % 3 else "发票" for n in range(23)] + [""]
    at_once = embedder.encode(texts)
    monkeypatch.setattr(qa_engine.static_embedder, "ENCODE_BATCH", 5)
    np.testing.assert_array_equal(embedder.encode(texts), at_once)
    assert embedder.encode([]).shape == (0, embedder.dimension)


def test_a_question_alone_gets_the_very_vector_it_gets_in_a_batch(static_model):
    embedder = StaticEmbedder(static_model[0])
    texts = ["个人所得税 工资 薪金 发票", "发票", "tax invoice 发票 工资", ""]
    in_a_batch = embedder.encode(texts)
    for text, vector in zip(texts, in_a_batch):
        np.testing.assert_array_equal(embedder.encode([text])[0], vector)


def test_load_embedder_picks_the_reader(static_model, tmp_path):
    assert is_static_model(static_model[0])
    assert isinstance(load_embedder(str(static_model[0])), StaticEmbedder)
    assert not is_static_model(tmp_path / "missing")
    assert type(load_embedder(str(tmp_path / "missing"))).__name__ == "SentenceTransformerEmbedder"


@pytest.mark.slow
def test_matches_sentence_transformers(static_model):
    from qa_engine.dense import SentenceTransformerEmbedder

    folder = str(static_model[0])
    texts = ["个人所得税 工资 薪金", "增值税发票", "", "tax invoice 发票"]
    np.testing.assert_allclose(StaticEmbedder(folder).encode(texts), SentenceTransformerEmbedder(folder).encode(texts), atol=1e-5)


@pytest.mark.parametrize("damaged", ["model.safetensors", "tokenizer.json"])
def test_a_damaged_model_file_is_an_error_saying_how_to_get_the_model_back(static_model, damaged):
    folder, _, _ = static_model
    path = folder / damaged
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexMismatch, match=rf"the embedding model {folder} is damaged or incomplete: delete that folder and run \"qa build\" again"):
        load_embedder(str(folder))
