"""Fails when a setting, CLI command or error code is missing from the docs."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from releasehub.cli.main import app
from releasehub.errors import ALL_ERRORS, DECISION_CODES
from releasehub.settings import SETTINGS_DOC, Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _commands(command: object, prefix: str) -> list[str]:
    if hasattr(command, "commands"):  # a group
        names: list[str] = []
        for name, sub in command.commands.items():
            names.extend(_commands(sub, f"{prefix} {name}"))
        return names
    return [prefix]


def test_every_cli_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    commands = _commands(typer.main.get_command(app), "releasehub")
    assert len(commands) >= 10
    missing = [c for c in commands if f"`{c}" not in text]
    assert not missing, f"undocumented commands in docs/cli.md: {missing}"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "settings.md").read_text()
    fields = set(Settings.__dataclass_fields__)
    assert fields == set(SETTINGS_DOC)
    missing = [f for f in fields if f"RELEASEHUB_{f.upper()}" not in text]
    assert not missing, f"undocumented settings in docs/settings.md: {missing}"


def test_every_error_code_is_documented() -> None:
    text = (DOCS / "errors.md").read_text()
    missing = [e.error_code for e in ALL_ERRORS if f"`{e.error_code}`" not in text]
    assert not missing, f"undocumented error codes in docs/errors.md: {missing}"


def test_every_code_decide_answers_with_is_documented() -> None:
    text = (DOCS / "errors.md").read_text()
    access = (DOCS / "access.md").read_text()
    missing = [code for code in DECISION_CODES if f"`{code}`" not in text or f"`{code}`" not in access]
    assert not missing, f"codes of access.decide undocumented in docs/errors.md or docs/access.md: {missing}"


def test_analysis_doc_holds_the_current_paper_table() -> None:
    # docs/analysis.md embeds `releasehub paper --format markdown`; regenerate it when a figure changes.
    result = CliRunner().invoke(app, ["paper", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    table = result.output.split("\n", 2)[2].strip()
    assert table.count("\n") >= 20
    assert table in (DOCS / "analysis.md").read_text()


def test_every_policy_in_the_docs_is_valid() -> None:
    """The YAML policies of docs/access.md and README.md (code blocks and `cat > policy.yaml` heredocs)."""
    import re
    from datetime import datetime, timezone

    import yaml

    from releasehub.access.policy import parse_policy

    now = datetime.now(timezone.utc)
    found = 0
    for doc in (DOCS / "access.md", DOCS / "gateway.md", DOCS.parent / "README.md"):
        text = doc.read_text()
        for block in re.findall(r"```yaml\n(.*?)```", text, re.S) + re.findall(r"<<'EOF'\n(.*?)\nEOF", text, re.S):
            data = yaml.safe_load(block)
            if isinstance(data, dict) and set(data) & {"gated", "tiers", "stages", "eligibility", "hosted_only"}:
                parse_policy(data, now)
                found += 1
    assert found >= 2
