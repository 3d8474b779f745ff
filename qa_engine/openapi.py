"""The OpenAPI 3 description of the HTTP API (served at /openapi.json)."""

from __future__ import annotations

from . import __version__
from .config import Settings


def openapi_document(settings: Settings, server_url: str = "") -> dict:
    limit = settings.max_question_chars
    question = {"type": "string", "minLength": 1, "maxLength": limit, "pattern": r"\S",
                "description": f"The question in Chinese; not blank, at most {limit} characters."}
    as_of = {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "maxLength": 0}, {"type": "null"}],
             "example": "2026-11-27",
             "description": "Answer as the rules stood on this date (YYYY-MM-DD); empty or null means today."}
    ask_body = {
        "type": "object",
        "required": ["question"],
        "additionalProperties": False,
        "properties": {
            "question": question,
            "as_of": as_of,
            "top_k": {"type": ["integer", "null"], "minimum": 1, "maximum": 50, "description": f"How many answers (default {settings.top_k})."},
        },
        "example": {"question": "年终奖怎么交个税", "as_of": "2026-11-27", "top_k": 3},
    }
    created_case = {"type": "object", "required": ["case"], "properties": {"case": {"type": "integer"}}}

    def body(schema: dict) -> dict:
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    def ok(schema_ref: str, status: str = "200", description: str = "OK") -> dict:
        return {status: {"description": description, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}}

    def errors(*statuses: int) -> dict:
        texts = {400: "Bad input: the message says what to fix", 401: "No API key, or one not valid or revoked",
                 403: "The API key's role may not use this endpoint", 404: "Not found", 413: "Body too large",
                 429: "Rate limited",
                 503: "Not ready: no index built yet, the index or database damaged, or the disk full (the message says which)"}
        return {str(s): {"description": texts[s], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                for s in statuses}

    def post(summary: str, schema: dict, response: dict, *statuses: int) -> dict:
        return {"post": {"summary": summary, "requestBody": body(schema), "responses": {**response, **errors(*statuses)}}}

    def protected(operation: dict) -> dict:
        """An agent console endpoint: needs an API key with role agent or curator."""
        inner = operation["post"]
        inner["security"] = [{"bearerKey": []}, {"headerKey": []}]
        inner["description"] = "Needs an API key with role agent or curator (qa keys add)."
        inner["responses"].update(errors(401, 403))
        return operation

    ask_errors = (400, 413, 429, 503)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "qa_engine: 12366 tax-policy answers",
            "version": __version__,
            "description": "Answers to Chinese tax-policy questions with citations down to the article. "
                           "Every error has the shape {\"error\": {\"code\", \"message\"}}. "
                           f"Bodies are limited to {settings.max_body_bytes} bytes; public endpoints to "
                           f"{settings.rate_limit} per client, console endpoints to {settings.console_rate_limit}. "
                           "Public endpoints need no key; the agent console's (/v1/search, /v1/flags) need an "
                           "API key with role agent or curator, made with `qa keys add`.",
        },
        "servers": [{"url": server_url}] if server_url else [],
        "paths": {
            "/v1/ask": post("Answer a question (recorded: query log, expert ticket or complaint case)",
                            ask_body, ok("#/components/schemas/AskResponse"), *ask_errors),
            "/v1/search": protected(post("Answer a question without recording anything (the agent console)",
                               ask_body, ok("#/components/schemas/AskResponse"), *ask_errors)),
            "/v1/articles/{doc}/{article}": {
                "get": {
                    "summary": "One article with its validity",
                    "parameters": [
                        {"name": "doc", "in": "path", "required": True, "schema": {"type": "string"},
                         "description": "Document id such as 个人所得税法(2018-08-31), or a short title such as 个人所得税法",
                         "example": "个人所得税法"},
                        {"name": "article", "in": "path", "required": True, "schema": {"type": "string"}, "example": "第六条"},
                        {"name": "as_of", "in": "query", "required": False, "schema": {"type": "string", "format": "date"}},
                    ],
                    "responses": {**ok("#/components/schemas/Article"), **errors(400, 404, 429)},
                }
            },
            "/v1/feedback": post(
                "Record whether an answer helped",
                {"type": "object", "required": ["answer_id", "helpful"], "additionalProperties": False,
                 "properties": {"answer_id": {"type": "string", "minLength": 1, "pattern": r"\S"},
                                "helpful": {"type": "boolean"},
                                "query_id": {"type": ["integer", "null"], "minimum": 1, "maximum": 2**63 - 1},
                                "comment": {"type": ["string", "null"], "maxLength": 1000}}},
                {"201": {"description": "Recorded", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"id": {"type": "integer"}}}}}}},
                400, 413, 429, 503),
            "/v1/escalations": post(
                "Ask the expert team to call back (after the expert route)",
                {"type": "object", "required": ["question", "name", "phone"], "additionalProperties": False,
                 "properties": {"question": question, "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"\S"},
                                "phone": {"type": "string", "pattern": r"^\s*[0-9+\- ]{5,20}\s*$"}}},
                {"201": {"description": "Case number", "content": {"application/json": {"schema": created_case}}}},
                400, 413, 429, 503),
            "/v1/complaints": post(
                "File a complaint (投诉) or report (举报)",
                {"type": "object", "required": ["question"], "additionalProperties": False,
                 "properties": {"question": question,
                                "contact": {"type": ["object", "null"], "additionalProperties": False,
                                            "properties": {"name": {"type": ["string", "null"], "maxLength": 100},
                                                           "phone": {"type": ["string", "null"], "maxLength": 100}}}}},
                {"201": {"description": "Case number", "content": {"application/json": {"schema": created_case}}}},
                400, 413, 429, 503),
            "/v1/flags": protected(post(
                "An agent flags the question on a call to the expert team",
                {"type": "object", "required": ["question"], "additionalProperties": False,
                 "properties": {"question": question, "note": {"type": ["string", "null"], "maxLength": 1000}}},
                {"201": {"description": "Expert queue item", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["ticket"], "properties": {"ticket": {"type": "integer"}}}}}}},
                400, 413, 429, 503)),
            "/healthz": {"get": {"summary": "Ready: the current index is loaded",
                                 "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
                                     "type": "object", "properties": {"status": {"const": "ok"}, "index": {"type": "string"}}}}}},
                                     **errors(503)}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3 document"}}}},
        },
        "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    }


SECURITY_SCHEMES = {
    "bearerKey": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key from qa keys add>"},
    "headerKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The same API key in an X-API-Key header"},
}

CITATION = {
    "type": "object",
    "required": ["doc", "title", "article", "status", "effective_from", "effective_to"],
    "properties": {
        "doc": {"type": "string"},
        "title": {"type": "string"},
        "article": {"type": "string"},
        "status": {"enum": ["in_force", "superseded", "not_yet_in_force", "unknown"]},
        "effective_from": {"type": ["string", "null"], "format": "date"},
        "effective_to": {"type": ["string", "null"], "format": "date"},
    },
}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"],
                                 "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
    },
    "Citation": CITATION,
    "Answer": {
        "type": "object",
        "required": ["rank", "kind", "id", "score", "title", "text", "citations"],
        "properties": {
            "rank": {"type": "integer", "minimum": 1},
            "kind": {"enum": ["approved", "article"]},
            "id": {"type": "string"},
            "score": {"type": "number"},
            "title": {"type": "string"},
            "text": {"type": "string"},
            "citations": {"type": "array", "items": {"$ref": "#/components/schemas/Citation"}},
        },
    },
    "AskResponse": {
        "type": "object",
        "required": ["question", "as_of", "route", "confidence", "answers"],
        "properties": {
            "question": {"type": "string"},
            "understood_as": {"type": "string", "description": "present when a tax term the question misheard (a phone "
                              "transcript's same-sounding characters) was put right: the question as searched"},
            "as_of": {"type": "string", "format": "date"},
            "route": {"enum": ["answer", "expert", "complaint"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "answers": {"type": "array", "items": {"$ref": "#/components/schemas/Answer"}},
            "query_id": {"type": "integer", "description": "/v1/ask only: pass it back with /v1/feedback"},
            "ticket": {"type": "integer", "description": "/v1/ask, expert route: the expert queue item"},
            "case": {"type": "integer", "description": "/v1/ask, complaint route: the complaint case"},
            "recorded": {"const": False, "description": "/v1/ask, present when the knowledge base's disk is full: the "
                         "question is answered but was not (wholly) recorded, so there may be no query_id, ticket or case"},
        },
    },
    "Article": {
        "type": "object",
        "required": ["doc", "title", "article", "text", "status", "effective_from", "effective_to"],
        "properties": {
            "doc": {"type": "string"}, "title": {"type": "string"}, "article": {"type": "string"},
            "chapter": {"type": "string"}, "text": {"type": "string"},
            "status": {"enum": ["in_force", "superseded", "not_yet_in_force"]},
            "effective_from": {"type": ["string", "null"]}, "effective_to": {"type": ["string", "null"]},
            "superseded_by": {"type": ["string", "null"]},
        },
    },
}
