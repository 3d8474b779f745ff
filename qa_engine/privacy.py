"""Personal data is redacted before anything is logged or stored for analytics."""

from __future__ import annotations

import re

# Order matters: the longer, more specific patterns first.
PATTERNS = [
    ("身份证号", re.compile(r"(?<![0-9A-Za-z])[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])")),
    ("纳税人识别号", re.compile(r"(?<![0-9A-Za-z])[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}(?![0-9A-Za-z])")),
    ("银行卡号", re.compile(r"(?<!\d)(?:\d[ -]?){15,18}\d(?!\d)")),
    ("手机号", re.compile(r"(?<!\d)(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)")),
]


def redact(text: str) -> str:
    """Replace ID numbers, taxpayer IDs, bank cards and mobile numbers with a labelled mask."""
    for label, pattern in PATTERNS:
        text = pattern.sub(f"[{label}]", text)
    return text
