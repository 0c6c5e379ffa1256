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
    commands = [line for line in text.split("```bash", 1)[1].split("```", 1)[0].splitlines() if line]
    assert commands == ["bash scripts/demo.sh", "bash scripts/setup.sh && .venv/bin/python -m pytest"]
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    # .ci/run is the README's test command, word for word, and nothing else
    assert ci == ["#!/usr/bin/env bash", commands[1]]
