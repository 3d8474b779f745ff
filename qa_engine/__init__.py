"""qa_engine: a tax-policy question-answering engine for the 12366 hotline."""

__version__ = "0.1.0"
