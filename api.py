"""WSGI entry point: `gunicorn api:app` or `waitress-serve api:app` (settings from QA_* variables)."""

from qa_engine.webapp import create_app

app = create_app()
