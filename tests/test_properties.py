"""Property-based tests: any text a caller or a file can hold gives an answer or a clear QAError.

One small service is built per module (building per example would be slow); questions are asked
with ``record=False`` except where recording is what is under test.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from qa_engine.answer_files import read_answers
from qa_engine.corpus import parse_law
from qa_engine.errors import InvalidInput, ParseError, QAError
from qa_engine.privacy import redact
from qa_engine.text import normalise


# No "explain" phase: it imports code that warns, and warnings are errors here, hiding the real failure.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]
EXAMPLES = settings(max_examples=40, deadline=None, phases=PHASES, suppress_health_check=[HealthCheck.function_scoped_fixture])
FEW = settings(EXAMPLES, max_examples=15)

# Pieces callers and files really contain, mixed with arbitrary unicode.
TAX_WORDS = ["个人所得税", "发票", "增值税", "年终奖", "偶然所得", "虚开", "税率", "居民个人", "第三条", "開具發票", "個人所得稅"]
FULL_WIDTH = "，。！？；：“”‘’（）【】《》、～＠＃％＆＊＋＝０１２３ＡＢＣａｂｃ　"
EMOJI = "😀🧾💰🏦👨‍👩‍👧‍👦🇨🇳"
CONTROL = "".join(chr(c) for c in range(0, 32)) + "\x7f\x85\u200b\u200e\u2028\u2029\ufeff"
OTHER_SCRIPTS = "Здравствуйте مرحبا שלום नमस्ते こんにちは 안녕하세요 Ελληνικά"

pieces = st.one_of(
    st.sampled_from(TAX_WORDS),
    st.text(alphabet=FULL_WIDTH, max_size=8),
    st.text(alphabet=EMOJI, max_size=4),
    st.text(alphabet=CONTROL, max_size=4),
    st.text(alphabet=OTHER_SCRIPTS, max_size=10),
    st.text(alphabet=string.printable, max_size=10),
    st.text(max_size=10),  # any code point, surrogates excluded by hypothesis' default
)
any_text = st.lists(pieces, max_size=8).map("".join)
long_text = st.builds(lambda piece, n: (piece * n)[:100_000], st.sampled_from(TAX_WORDS + ["a", " ", "😀", "\x00"]), st.integers(1, 100_000))


@pytest.fixture(scope="module")
def built(module_service):
    return module_service


def check_answer(response: dict) -> None:
    assert response["route"] in ("answer", "expert", "complaint")
    assert 0.0 <= response["confidence"] <= 1.0
    for answer in response["answers"]:
        assert answer["citations"]


@EXAMPLES
@given(text=st.one_of(any_text, long_text))
def test_normalise_is_total_idempotent_and_clean(text):
    once = normalise(text)
    assert normalise(once) == once
    assert once == once.strip()
    assert not any(c in once for c in "\x00\x1f\u200b\ufeff")


@EXAMPLES
@given(text=st.one_of(any_text, long_text.map(lambda t: t[:5000])))
def test_analyzer_gives_clean_tokens_for_any_text(built, text):
    analyzer = built.analyzer()
    for token in analyzer.tokens(text):
        assert isinstance(token, str) and token and token == token.strip()
    assert all(w >= 0 for w in analyzer.query_terms(text).values())


@EXAMPLES
@given(text=any_text)
def test_ask_answers_or_refuses_clearly(built, text):
    try:
        response = built.ask(text, record=False)
    except QAError as exc:
        assert isinstance(exc, InvalidInput) and str(exc)
        return
    check_answer(response)


@EXAMPLES
@given(text=long_text)
def test_long_questions_are_refused_clearly(built, text):
    if len(text) <= built.settings.max_question_chars:
        return
    with pytest.raises(InvalidInput, match="longer than|is empty"):
        built.ask(text, record=False)


@FEW
@given(text=any_text)
def test_recorded_questions_are_redacted_and_stored(built, text):
    try:
        response = built.ask(text + " 身份证110101199003077777", record=True)
    except InvalidInput:
        return
    stored = built.store.db.execute("SELECT question FROM query_log WHERE id = ?", [response["query_id"]]).fetchone()[0]
    assert "110101199003077777" not in stored


@EXAMPLES
@given(text=st.one_of(any_text, long_text))
def test_redact_is_total_and_idempotent(text):
    once = redact(text)
    assert redact(once) == once


@EXAMPLES
@given(body=any_text, title=any_text)
def test_law_parsing_gives_a_document_or_a_parse_error(body, title):
    text = f"# {title}\n2020年1月1日 通过\n<!-- INFO END -->\n{body}\n第一条 {body}\n"
    for candidate in (text, body):
        try:
            document = parse_law(candidate, "测试法(2020-01-01)")
        except ParseError as exc:
            assert "测试法(2020-01-01)" in str(exc)
            continue
        assert document.articles and all(a.doc == document.doc for a in document.articles)


@EXAMPLES
@given(line=any_text)
def test_answer_lines_give_answers_or_a_parse_error_naming_the_file(tmp_path_factory, line):
    path = tmp_path_factory.mktemp("answers") / "answers.jsonl"
    path.write_text(line, "utf-8", errors="surrogatepass")
    try:
        read_answers(path)
    except ParseError as exc:
        assert str(exc).startswith(str(path))


@FEW
@given(body=any_text)
def test_ingesting_any_file_reports_or_stores_and_never_raises(built, tmp_path_factory, body):
    folder = tmp_path_factory.mktemp("any")
    path = folder / "任意法(2021-05-01).md"
    path.write_text(f"# 任意法\n<!-- INFO END -->\n{body}\n", "utf-8", errors="surrogatepass")
    before = built.store.counts()
    report = built.ingest([path])
    if report.errors:
        assert str(path) in report.errors[0]
        assert built.store.counts() == before
    else:
        assert report.added or report.replaced or report.unchanged


passage_numbers = st.lists(st.integers(min_value=0, max_value=300), unique=True, max_size=40)


@given(passage_numbers, passage_numbers)
@EXAMPLES
def test_candidate_set_helpers_agree_with_plain_python(values, others):
    import numpy as np

    from qa_engine.retrieval import place_in, score_in

    values_array, others_array = np.array(values, dtype=np.int64), np.array(others, dtype=np.int64)
    assert place_in(values_array, others_array).tolist() == [others.index(v) if v in others else -1 for v in values]
    scores = {number: 1.0 + place for place, number in enumerate(others)}
    found_scores = np.array([scores[number] for number in others], dtype=np.float32)
    assert score_in(values_array, others_array, found_scores).tolist() == [scores.get(v, 0.0) for v in values]


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=9), st.floats(min_value=-5, max_value=5, width=32)), max_size=60))
@EXAMPLES
def test_largest_of_each_agrees_with_plain_python(owned_values):
    import numpy as np

    from qa_engine.retrieval import largest_of_each

    owners = np.array([owner for owner, _ in owned_values], dtype=np.int64)
    values = np.array([value for _, value in owned_values], dtype=np.float32)
    expected = [max((v for o, v in owned_values if o == owner), default=-np.inf) for owner in range(10)]
    assert largest_of_each(values, owners, 10).tolist() == expected
