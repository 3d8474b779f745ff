"""WSGI entry point for any WSGI server: `granian --interface wsgi api:app` (settings from QA_* variables)."""

from qa_engine.webapp import create_app

app = create_app()
