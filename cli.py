"""`python cli.py ...` does what the `qa` command does."""

from qa_engine.cli import main

if __name__ == "__main__":
    main()
