"""AWS SDKs are imported only under ``adapters/`` folders (ADR 0029, docs/conventions.md).

ruff's banned-api rule (TID251) enforces it while editing; this test reads the same facts from
the sources and from ruff's configuration, so that nobody widens the exemption by file-name
pattern again, with no exemption left for a pure module or a whole package.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SDKS = ("boto3", "botocore", "amazon_kclpy")
PRODUCT = ["libs/*/src", "services/*/src", "cli/src"]
# Exempt without being adapters: tools and tests, never product code.
TOOLING = {"**/tests/**", "tests/**", "conftest.py", "scripts/**", "benchmarks/**"}


def _imports_sdk(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(n.split(".")[0] in SDKS for n in names):
            return True
    return False


def _product_modules() -> list[Path]:
    return sorted(p for pattern in PRODUCT for p in ROOT.glob(f"{pattern}/**/*.py"))


@pytest.mark.unit
def test_only_modules_under_adapters_folders_import_an_aws_sdk() -> None:
    importers = [p.relative_to(ROOT).as_posix() for p in _product_modules() if _imports_sdk(p)]
    assert importers, "the scan found no SDK import at all: it is not reading the sources"
    misplaced = [r for r in importers if "/adapters/" not in r]
    assert misplaced == []
    adapters = [r for r in importers if "/adapters/" in r]
    assert {
        "libs/changelake/src/changelake/adapters/aws.py",
        "services/producer/src/changelake_producer/adapters/dynamodb_writer.py",
        "services/consumer/src/changelake_consumer/adapters/kcl_processor.py",
    } <= set(adapters)


@pytest.mark.unit
def test_ruff_exempts_adapters_by_folder_and_nothing_by_file_name() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    ignores = config["tool"]["ruff"]["lint"]["per-file-ignores"]
    exempt = {pattern for pattern, rules in ignores.items() if "TID251" in rules}
    assert "**/adapters/**" in exempt
    assert exempt - {"**/adapters/**"} == TOOLING
