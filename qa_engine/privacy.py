"""Personal data is redacted before anything is logged or stored for analytics."""

from __future__ import annotations

import logging
import re

# Order matters: the longer, more specific patterns first.
PATTERNS = [
    ("身份证号", re.compile(r"(?<![0-9A-Za-z])[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])")),
    ("纳税人识别号", re.compile(r"(?<![0-9A-Za-z])[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}(?![0-9A-Za-z])")),
    ("银行卡号", re.compile(r"(?<!\d)(?:\d[ -]?){15,18}\d(?!\d)")),
    ("手机号", re.compile(r"(?<!\d)(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)")),
]
# Callers type numbers with a Chinese input method too: full-width digits and letters (０-９, Ａ-Ｚ,
# ａ-ｚ) are folded to ASCII first, so "１３８１２３４５６７８" is caught like "13812345678".
FULL_WIDTH_ALNUM = {code: code - 0xFEE0 for code in [*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B)]}
FULL_WIDTH_ALNUM.update({0x3000: 0x20, 0xFF0B: 0x2B, 0xFF0D: 0x2D})  # ideographic space, ＋, －


def redact(text: str) -> str:
    """Replace ID numbers, taxpayer IDs, bank cards and mobile numbers with a labelled mask."""
    text = text.translate(FULL_WIDTH_ALNUM)
    for label, pattern in PATTERNS:
        text = pattern.sub(f"[{label}]", text)
    return text


class RedactingFilter(logging.Filter):
    """Attach to a logger or handler: the message (with its arguments filled in) and any
    traceback text are redacted before a handler writes them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
