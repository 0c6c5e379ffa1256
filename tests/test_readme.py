"""The README's configuration reference is generated from the schema and must stay in step."""
from __future__ import annotations

from pathlib import Path

from anomalyd.daemon.config_command import reference_table

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def test_config_reference_in_readme_matches_the_schema():
    text = README.read_text()
    documented = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert documented == reference_table(), "run: python -m anomalyd.daemon.cli config reference, paste into README"


def test_readme_opens_with_the_two_commands_that_ci_runs():
    text = README.read_text()
    commands = text.split("```sh", 1)[1].split("```", 1)[0]
    assert "bash scripts/demo.sh" in commands and "bash scripts/test.sh" in commands
    test_line = next(line for line in commands.splitlines() if line.startswith("bash scripts/test.sh"))
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    assert ci[-1] == test_line  # .ci/run runs the README's test command, word for word
