"""Personal data is redacted before any log or query record is written: each pattern, the forms
callers type it in, what must stay untouched, and every place a question is recorded."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from qa_engine.privacy import RedactingFilter, redact

PERSONAL = {
    "身份证号": ["110101199003077777", "11010119900307777X", "11010119900307777x", "４４０３０５２００１０２２９１２３Ｘ"],
    "纳税人识别号": ["91350100M000100Y43", "91110108MA01ABCD2X", "９１３５０１００Ｍ０００１００Ｙ４３"],
    "银行卡号": ["6222021234567890123", "6222 0212 3456 7890", "6217-0012-3456-7890-12", "4367421234567890"],
    "手机号": ["13812345678", "+86 138 1234 5678", "86-15912345678", "139-1234-5678", "１３８１２３４５６７８"],
}
NOT_PERSONAL = [
    "第十三条 2019年1月1日起施行，税率为百分之二十",
    "年收入120000元，专项附加扣除每月1000元",
    "发票号码 12345678，金额 3000.00 元",
    "12366 热线，国税发〔2009〕31号",
    "2024-12-25 的增值税法第二十条",
]


@pytest.mark.parametrize("label", PERSONAL)
def test_each_pattern_is_masked_with_its_label(label):
    for value in PERSONAL[label]:
        for text in (value, f"我的号码是{value}，请回电", f"号码:{value}。"):
            redacted = redact(text)
            assert f"[{label}]" in redacted, (value, redacted)
            digits = [c for c in value if c.isdigit()]
            assert "".join(digits[-8:]) not in "".join(c for c in redacted if c.isdigit())


@pytest.mark.parametrize("text", NOT_PERSONAL)
def test_ordinary_numbers_are_left_alone(text):
    assert redact(text) == text


def test_an_id_like_number_with_a_bad_birth_date_is_still_masked():
    # 18 digits with month 13 is no ID number, but a run that long is personal data of some kind.
    assert not any(c.isdigit() for c in redact("110101199013077777"))


def test_questions_are_redacted_in_query_log_queue_and_complaints(service):
    phone, id_number, card = "13812345678", "11010119900307777X", "6222021234567890123"
    service.settings = replace(service.settings, threshold=1.01)  # every answer goes to the experts too
    asked = service.ask(f"我的身份证{id_number}，手机{phone}，卡号{card}，外星人来中国要交什么税", record=True)
    complaint = service.ask(f"我要投诉税务局工作人员，我的电话{phone}", record=True)
    feedback = service.record_feedback("x", False, asked["query_id"], comment=f"打我电话{phone}")
    db = service.store.db
    stored = [
        db.execute("SELECT question FROM query_log WHERE id = ?", [asked["query_id"]]).fetchone()[0],
        db.execute("SELECT question FROM query_log WHERE id = ?", [complaint["query_id"]]).fetchone()[0],
        db.execute("SELECT comment FROM feedback WHERE id = ?", [feedback]).fetchone()[0],
    ]
    assert asked["route"] == "expert"
    stored += db.execute("SELECT question, normalised FROM queue WHERE id = ?", [asked["ticket"]]).fetchone()
    assert complaint["route"] == "complaint"
    stored += db.execute("SELECT question FROM complaints WHERE id = ?", [complaint["case"]]).fetchone()
    assert len(stored) == 6
    for text in stored:
        for secret in (phone, id_number, card):
            assert secret not in text
    assert "[身份证号]" in stored[0] and "[手机号]" in stored[0] and "[银行卡号]" in stored[0]
    whole_db = "\n".join(str(row) for table in ("query_log", "queue", "complaints", "feedback")
                         for row in db.execute(f"SELECT * FROM {table}").fetchall())
    assert phone not in whole_db and id_number not in whole_db and card not in whole_db


def test_the_callback_desk_keeps_the_contact_it_needs(service):
    """A callback request must keep the phone number to call back: it is contact data, stored in
    the queue item's contact field, never in the logs."""
    item = service.request_callback("外星人交什么税", "张三", "13812345678")
    assert service.queue_item(item)["contact"]["phone"] == "13812345678"


def test_log_records_are_redacted_including_tracebacks(caplog):
    logger = logging.getLogger("qa_engine.test_privacy")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="qa_engine.test_privacy"):
        logger.info("question from %s: %s", "13812345678", "身份证110101199003077777")
        try:
            raise ValueError("bad card 6222021234567890123")
        except ValueError:
            logger.exception("failed for %s", "13912345678")
    text = caplog.text
    assert "13812345678" not in text and "110101199003077777" not in text
    assert "13912345678" not in text and "6222021234567890123" not in text
    assert "[手机号]" in text and "[身份证号]" in text and "[银行卡号]" in text
