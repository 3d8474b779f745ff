"""One settings object, read when a service is created (never at import time)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parent
SHIPPED_CORPUS = PROJECT_ROOT / "corpus"


@dataclass(frozen=True)
class Settings:
    """Where the knowledge base lives and how questions are answered.

    Every field can be set from the environment as ``QA_<FIELD>`` (e.g. ``QA_HOME``,
    ``QA_EMBED_MODEL``, ``QA_THRESHOLD``) and overridden by keyword arguments.
    """

    home: Path = Path("index")
    embed_model: str = ""  # empty: the offline model trained from the corpus at build time
    threshold: float = 0.65  # below this confidence a question goes to the expert team (chosen with bench/calibrate.py)
    top_k: int = 5
    max_question_chars: int = 2000
    corpus_dir: Path = field(default=SHIPPED_CORPUS)
    user: str = ""
    queue_due_working_days: int = 2
    # The HTTP API (qa serve)
    cors_origins: str = ""  # comma-separated origins allowed to call /v1/* from a browser; empty: none
    rate_limit: str = "60 per minute"  # per client, on the public endpoints the widget uses
    console_rate_limit: str = "600 per minute"  # per client, on the agent console's search-as-you-type
    max_body_bytes: int = 65536
    # reverse proxies in front of qa serve that add the caller to X-Forwarded-For (nginx alone: 1); 0 trusts no such header
    trusted_proxies: int = 0

    def __post_init__(self):
        for name in ("top_k", "max_question_chars", "queue_due_working_days", "max_body_bytes", "trusted_proxies"):
            if getattr(self, name) < 0:
                from .errors import InvalidInput

                raise InvalidInput(f"QA_{name.upper()} cannot be negative, got {getattr(self, name)}")

    @classmethod
    def from_env(cls, environ: dict | None = None, **overrides) -> "Settings":
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(f"QA_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _convert(f.type, raw, f.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        return replace(settings, home=Path(settings.home), corpus_dir=Path(settings.corpus_dir))


def _convert(type_name: str, raw: str, name: str):
    from .errors import InvalidInput

    try:
        if type_name == "float":
            return float(raw)
        if type_name == "int":
            return int(raw)
    except ValueError:
        raise InvalidInput(f"QA_{name.upper()} must be a {type_name}, got {raw!r}") from None
    if type_name == "Path":
        return Path(raw)
    return raw
