"""The README is the front door: every command it should mention, it mentions."""

from pathlib import Path

from qa_engine.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")


def test_every_command_is_in_the_readme():
    for name, command in cli.commands.items():
        assert f"qa {name}" in README, f"qa {name} is missing from the README"
        for sub in getattr(command, "commands", {}):
            assert sub in README, f"qa {name} {sub} is missing from the README"


def test_the_readme_names_the_test_command_that_ci_runs():
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text("utf-8")
    assert "python -m pytest -q" in README
    assert ci.strip().splitlines()[-1] == "python -m pytest -q"
