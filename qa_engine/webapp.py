"""The HTTP API, the website consultation widget and the agent console, over one QAService.

Routes parse the request, call one service method and return its result as JSON. Every error a
client can cause comes back in one shape, ``{"error": {"code": ..., "message": ...}}``.

The public endpoints (what the widget calls) need no key. The agent console's endpoints need an
API key (``qa keys add``) with role agent or curator, sent as ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``: 401 without a valid key, 403 with a key whose role may not.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import orjson
from flask import Blueprint, Flask, current_app, g, jsonify, redirect, render_template, request, url_for
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from .config import Settings
from .errors import InvalidInput, QAError, Unauthorized
from .privacy import RedactingFilter
from .service import QAService, check_date

log = logging.getLogger(__name__)

api = Blueprint("api", __name__, url_prefix="/v1")  # what the widget and other sites call
console_api = Blueprint("console_api", __name__, url_prefix="/v1")  # what the agent console calls
pages = Blueprint("pages", __name__)  # widget script, demo page, console page, article pages

AGENT_ROLES = ("agent", "curator")  # a curator may do whatever an agent may
ASK_FIELDS = {"question", "as_of", "top_k"}
MAX_NAME_CHARS = 100
MAX_COMMENT_CHARS = 1000

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}
HTTP_MESSAGES = {
    404: "no such endpoint: see /openapi.json",
    413: "the request body is too large",
    429: "too many requests from this client: wait a minute and try again",
}


def create_app(config: dict | None = None, service: QAService | None = None) -> Flask:
    """The Flask app. ``service`` defaults to one built from ``QA_*`` settings; ``config`` overrides
    Flask settings and the ``QA_RATE_LIMIT``, ``QA_CONSOLE_RATE_LIMIT``, ``QA_CORS_ORIGINS`` and
    ``QA_TRUSTED_PROXIES`` keys."""
    app = Flask(__name__)
    app.json = ResponseJSON(app)
    service = service or QAService(Settings.from_env())
    settings = service.settings
    app.config.from_mapping(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        QA_RATE_LIMIT=settings.rate_limit,
        QA_CONSOLE_RATE_LIMIT=settings.console_rate_limit,
        QA_CORS_ORIGINS=settings.cors_origins,
        QA_TRUSTED_PROXIES=settings.trusted_proxies,
    )
    app.config.update(config or {})
    app.url_map.merge_slashes = False  # /v1/articles/0/%2F0 is no such article (404), not a redirect
    app.extensions["qa_service"] = service
    if not any(isinstance(f, RedactingFilter) for f in log.filters):
        log.addFilter(RedactingFilter())  # an unexpected error's log line may quote what a caller typed

    _trust_proxies(app)
    _add_rate_limits(app)
    _add_cors(app)
    app.register_blueprint(api)
    app.register_blueprint(console_api)
    app.register_blueprint(pages)
    app.register_error_handler(QAError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


class ResponseJSON(DefaultJSONProvider):
    """JSON as Flask writes it (UTF-8 text, no spaces, dates as HTTP dates), by orjson: an answer
    in 4 µs against the standard library's 57. Debug mode's indented output is the standard library's."""

    ensure_ascii = False
    sort_keys = False
    ORJSON_OPTIONS = (orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
                      | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS)

    def dumps(self, obj, **kwargs) -> str:
        if kwargs and kwargs != {"separators": (",", ":")}:
            return super().dumps(obj, **kwargs)
        return orjson.dumps(obj, default=self.default, option=self.ORJSON_OPTIONS).decode("utf-8")


def _trust_proxies(app: Flask) -> None:
    """Behind reverse proxies every request comes from a proxy's address: take the caller's from
    X-Forwarded-For, as many hops back as there are proxies (rate limits are per caller)."""
    proxies = app.config["QA_TRUSTED_PROXIES"]
    if proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)


def _add_rate_limits(app: Flask) -> None:
    from .rate_limits import COUNTERS_NAME, RateLimits, parse_limits

    limits = RateLimits({
        api.name: parse_limits("QA_RATE_LIMIT", app.config["QA_RATE_LIMIT"]),
        console_api.name: parse_limits("QA_CONSOLE_RATE_LIMIT", app.config["QA_CONSOLE_RATE_LIMIT"]),
    }, app.extensions["qa_service"].home / COUNTERS_NAME)
    app.extensions["rate_limits"] = limits

    @app.before_request
    def count_request():
        counted = limits.hit(request.blueprint, request.endpoint, request.remote_addr or "")
        if counted is None:
            return None
        allowed, g.rate_limit_headers = counted
        return None if allowed else error_response(429, HTTP_CODES[429], HTTP_MESSAGES[429])

    @app.after_request
    def tell_rate_limit(response):
        response.headers.update(g.get("rate_limit_headers", {}))
        return response


def _add_cors(app: Flask) -> None:
    origins = app.config["QA_CORS_ORIGINS"]
    if isinstance(origins, str):
        origins = [o.strip() for o in origins.split(",") if o.strip()]
    if origins:
        from flask_cors import CORS

        CORS(app, resources={r"/v1/*": {"origins": origins}}, methods=["GET", "POST"], allow_headers=["Content-Type", "Authorization", "X-API-Key"])


def qa() -> QAService:
    return current_app.extensions["qa_service"]


# ---- errors ---------------------------------------------------------------------------


def error_response(status: int, code: str, message: str, headers: dict | None = None):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _domain_error(exc: QAError):
    return error_response(exc.http_status, exc.code, str(exc), getattr(exc, "headers", None))


def _http_error(exc: HTTPException):
    status = exc.code or 500
    message = HTTP_MESSAGES.get(status) or exc.description or exc.name
    headers = {}
    if status == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(exc.valid_methods)
        message = f"{request.method} is not allowed here; use {headers['Allow']}"
    return error_response(status, HTTP_CODES.get(status, exc.name.lower().replace(" ", "_")), message, headers)


def _unexpected_error(exc: Exception):
    log.exception("unexpected error on %s %s", request.method, request.path)
    return error_response(500, "internal_error", "something went wrong on our side; please try again later")


# ---- API keys -------------------------------------------------------------------------


def request_key() -> str | None:
    """The API key sent with the request: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    header = request.headers.get("Authorization", "").strip()
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized('send the API key as "Authorization: Bearer <key>" (or in an X-API-Key header)')
        return value.strip()
    return request.headers.get("X-API-Key", "").strip() or None


def require_key(*roles: str):
    """A ``before_request`` hook: the request needs an active API key with one of ``roles``;
    the key's name and role are in ``g.api_key``. CORS preflights carry no key and pass."""

    def check():
        if request.method != "OPTIONS":
            g.api_key = qa().authenticate(request_key(), roles)

    return check


# ---- request bodies -------------------------------------------------------------------


def json_body(allowed: set[str], required: set[str]) -> dict:
    """The request body as a JSON object with only the ``allowed`` fields, all ``required`` present."""
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidInput("the request body must be a JSON object (Content-Type: application/json)") from None
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}; this endpoint takes {', '.join(sorted(allowed))}")
    missing = sorted(name for name in required if data.get(name) is None)
    if missing:
        raise InvalidInput(f"{missing[0]} is required")
    _check_text_is_unicode(data)
    return data


def _check_text_is_unicode(value) -> None:
    """JSON can carry lone surrogates (\\ud800) that no database or tokenizer accepts."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput("text must be valid Unicode (no lone surrogate escapes)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text_is_unicode(key)
            _check_text_is_unicode(item)
    elif isinstance(value, list):
        for item in value:
            _check_text_is_unicode(item)


def optional_text(data: dict, name: str, limit: int) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(f"{name} must be text of at most {limit} characters")
    return value


# ---- the public API -------------------------------------------------------------------


@api.post("/ask")
def ask():
    """Answer a question; records it (query log, expert ticket or complaint case) like `qa ask`."""
    data = json_body(ASK_FIELDS, {"question"})
    return jsonify(qa().ask(data["question"], _as_of(data.get("as_of")), data.get("top_k")))


@api.get("/articles/<doc>/<article>")
def article(doc: str, article: str):
    return jsonify(qa().article(doc, article, _as_of(request.args.get("as_of"))))


@api.post("/feedback")
def feedback():
    data = json_body({"answer_id", "helpful", "query_id", "comment"}, {"answer_id", "helpful"})
    query_id = data.get("query_id")
    if query_id is not None and (isinstance(query_id, bool) or not isinstance(query_id, int) or not 1 <= query_id < 2**63):
        raise InvalidInput("query_id must be the positive whole number returned by /v1/ask")
    comment = optional_text(data, "comment", MAX_COMMENT_CHARS)
    feedback_id = qa().record_feedback(data["answer_id"], data["helpful"], query_id, comment)
    return jsonify({"id": feedback_id}), 201


@api.post("/escalations")
def escalation():
    """A taxpayer routed to the experts asks to be called back."""
    data = json_body({"question", "name", "phone"}, {"question", "name", "phone"})
    if isinstance(data["name"], str) and len(data["name"]) > MAX_NAME_CHARS:
        raise InvalidInput(f"name must be at most {MAX_NAME_CHARS} characters")
    case = qa().request_callback(data["question"], data["name"], data["phone"])
    return jsonify({"case": case}), 201


@api.post("/complaints")
def complaint():
    """A complaint (投诉) or a report (举报) for the complaint desk."""
    data = json_body({"question", "contact"}, {"question"})
    contact = data.get("contact")
    if contact is not None:
        if not isinstance(contact, dict) or set(contact) - {"name", "phone"}:
            raise InvalidInput("contact must be an object with optional name and phone")
        contact = {key: optional_text(contact, key, MAX_NAME_CHARS) for key in contact}
        contact = {key: value.strip() for key, value in contact.items() if value.strip()} or None
    case = qa().file_complaint(data["question"], contact)
    return jsonify({"case": case}), 201


# ---- what the agent console calls (API key with role agent or curator) -----------------

console_api.before_request(require_key(*AGENT_ROLES))


@console_api.post("/search")
def search():
    """Like /v1/ask, but records nothing: the console searches on every pause in typing."""
    data = json_body(ASK_FIELDS, {"question"})
    return jsonify(qa().ask(data["question"], _as_of(data.get("as_of")), data.get("top_k"), record=False))


@console_api.post("/flags")
def flag():
    """An agent flags the question on the call to the expert team."""
    data = json_body({"question", "note"}, {"question"})
    ticket = qa().flag_for_experts(data["question"], optional_text(data, "note", MAX_COMMENT_CHARS), by=g.api_key["name"])
    return jsonify({"ticket": ticket}), 201


def _as_of(value) -> str | None:
    return None if value is None or value == "" else check_date(value)


# ---- health, description, pages -------------------------------------------------------


@pages.get("/healthz")
def healthz():
    """Ready when the current index is loaded; reports which build answers."""
    retriever = qa().retriever()
    return jsonify({"status": "ok", "index": retriever.index.manifest["build_id"]})


@pages.get("/openapi.json")
def openapi():
    from .openapi import openapi_document

    return jsonify(openapi_document(qa().settings, request.host_url.rstrip("/")))


@pages.get("/widget.js")
def widget_script():
    script = Path(current_app.static_folder, "widget.js").read_text("utf-8")
    return script, 200, {"Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "public, max-age=300"}


@pages.get("/")
def home():
    return redirect(url_for("pages.demo"))


@pages.get("/demo")
def demo():
    return render_template("demo.html")


@pages.get("/console")
def console():
    return render_template("console.html")


@pages.get("/articles/<doc>/<article>")
def article_page(doc: str, article: str):
    """The full text of one article, for the widget's 查看条文全文 links."""
    as_of = request.args.get("as_of") or None
    return render_template("article.html", article=qa().article(doc, article, _as_of(as_of)))
