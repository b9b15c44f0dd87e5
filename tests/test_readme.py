"""The README stays true: every setting, every command and the two quick-start commands."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
from changelake.settings import ChangelakeSettings
from changelake_cli.main import app
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SETTINGS_MODULES = [
    "changelake.settings",
    "changelake_producer.settings",
    "changelake_consumer.settings",
    "changelake_catalog.settings",
    "changelake_transform.settings",
    "changelake_emulator.settings",
    "changelake_lake.query.settings",
]


def _env_names() -> set[str]:
    names: set[str] = set()
    for module_name in SETTINGS_MODULES:
        module = importlib.import_module(module_name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if not issubclass(cls, BaseSettings) or cls.__module__ != module.__name__:
                continue
            prefix = str(cls.model_config.get("env_prefix", ""))
            names.update(f"{prefix}{field}".upper() for field in cls.model_fields)
    return names


def _commands(group: Any, prefix: str) -> list[str]:
    # Duck-typed: typer ships its own click-compatible group classes.
    found: list[str] = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        found.append(path)
        if hasattr(command, "commands"):
            found.extend(_commands(command, path))
    return found


@pytest.mark.unit
def test_readme_lists_every_setting_of_every_service() -> None:
    names = _env_names()
    assert "CHANGELAKE_LAKE_BUCKET" in names
    assert len(names) > len(ChangelakeSettings.model_fields)
    missing = sorted(n for n in names if f"`{n}`" not in README)
    assert missing == []


@pytest.mark.unit
def test_readme_documents_every_cli_command() -> None:
    root = typer.main.get_command(app)
    commands = _commands(root, "changelake")
    assert "changelake consumer run" in commands
    missing = [c for c in commands if f"`{c}" not in README]
    assert missing == []


@pytest.mark.unit
def test_readme_quick_start_is_the_two_make_commands_ci_runs() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"^make demo\b", quick_start, re.M)
    assert re.search(r"^make test\b", quick_start, re.M)
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M)
    assert re.search(r"^test:", makefile, re.M)


# Paths that only exist on a development machine, never in a clone of the repository.
_OUTSIDE_PATH_RE = re.compile(r"\.\./shared\b|(?<![\w.])shared/[A-Z_]+\.md|/work/|/root/")


@pytest.mark.unit
def test_repository_refers_to_no_path_outside_itself() -> None:
    import subprocess

    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = []
    for rel in tracked:
        path = ROOT / rel
        if (
            rel.endswith(".lock")
            or rel == "tests/test_readme.py"
            or not path.is_file()
            or path.stat().st_size > 1_000_000
        ):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        offenders += [
            f"{rel}:{n}"
            for n, line in enumerate(text.splitlines(), 1)
            if _OUTSIDE_PATH_RE.search(line)
        ]
    assert offenders == []


@pytest.mark.unit
def test_docs_that_code_comments_cite_exist() -> None:
    for name in ("architecture.md", "aws-behaviour.md", "conventions.md"):
        assert (ROOT / "docs" / name).is_file(), name
