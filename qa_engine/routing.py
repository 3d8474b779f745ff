"""Where a question goes: the automatic answer, the expert team, or the complaint desk."""

from __future__ import annotations

import re
from itertools import accumulate

ANSWER = "answer"
EXPERT = "expert"
COMPLAINT = "complaint"

# 投诉 is a complaint about service; 举报/检举/告发 report someone else's wrongdoing.
COMPLAINT_WORDS = re.compile(r"投诉|举报|检举|告发|揭发|实名反映|要反映|曝光")
# Someone asking how the procedure works (the reward for a report, within one clause; whether the
# reporter's details are kept; being reported), not filing one now, unless they say they are.
ABOUT_PROCEDURE = re.compile(r"(举报|检举)[^，。,;；!！?？]{0,12}?(奖励|奖金)|举报人的?(信息|身份)|被(人|公开)?(举报|投诉|曝光)")
FILING = re.compile(r"(要|想|来)(实名)?(举报|检举|投诉)")

COMPLAINT_CATEGORIES = [
    ("虚开发票", re.compile(r"虚开|假发票|伪造.*发票|卖发票|买发票|代开发票")),
    ("不开发票", re.compile(r"不(给|肯|愿意?)?开(具)?发票|不开票|没有发票|不给票|不开.*(发票|票)")),
    ("偷逃税款", re.compile(r"偷税|逃税|漏税|不交税|不缴税|没交税|没有.*税务登记|骗.*退税|隐瞒收入")),
    ("服务投诉", re.compile(r"态度|服务|排队|系统|崩溃|登不上|打不通|推诿|不作为|办事")),
]


# The same words as heard on a phone line: a transcript may write 投诉 as 头诉. Syllable by syllable
# and with their tones: 税务局报税 (ju2 bao4) and 局保密 (ju2 bao3) are not 举报 (ju3 bao4).
COMPLAINT_SOUNDS = re.compile(r"(?<!\S)(tou2 su4|ju3 bao4|jian3 ju3)(?!\S)")


def is_complaint(question: str, sounds: str = "", words: list[str] | None = None) -> bool:
    """``sounds``: the question's syllables with tones (``TextAnalyzer.sounds``), where known:
    catches transcripts that wrote a complaint word with other characters of the same sound.
    ``words``: the question's words (jieba's segmentation), where known: a complaint word counts
    where a word begins with it (投诉信 is one), not across two (报告发票 holds 告发)."""
    if words is None:
        said = bool(COMPLAINT_WORDS.search(question))
    else:
        starts = set(accumulate(map(len, words), initial=0))
        said = any(match.start() in starts for match in COMPLAINT_WORDS.finditer("".join(words)))
    heard = said or bool(COMPLAINT_SOUNDS.search(sounds))
    return heard and (bool(FILING.search(question)) or not ABOUT_PROCEDURE.search(question))


def complaint_category(question: str) -> str:
    for category, pattern in COMPLAINT_CATEGORIES:
        if pattern.search(question):
            return category
    return "其他"


def route(question: str, confidence: float, threshold: float, sounds: str = "", words: list[str] | None = None) -> str:
    if is_complaint(question, sounds, words):
        return COMPLAINT
    return ANSWER if confidence >= threshold else EXPERT
