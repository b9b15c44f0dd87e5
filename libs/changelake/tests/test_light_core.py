"""The core loads neither pyarrow nor boto3 at import (ADR 0029).

Only the modules that need them declare so: the AWS adapters (``changelake.adapters``, extra
``aws``) and the Arrow schema modules (extra ``arrow``). Every other module is imported in a
fresh interpreter and what it loaded is read from ``sys.modules``.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import changelake
import pytest

NEEDS_AWS = "changelake.adapters."
NEEDS_ARROW: set[str] = set()  # the Arrow schema modules live in changelake_lake (ADR 0028)
HEAVY = ("pyarrow", "boto3", "botocore")


def _core_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(changelake.__path__, "changelake.")]
    return sorted(n for n in names if not n.startswith(NEEDS_AWS) and n not in NEEDS_ARROW)


@pytest.mark.unit
def test_every_core_module_imports_without_pyarrow_or_boto3() -> None:
    modules = _core_modules()
    assert {"changelake.events", "changelake.settings", "changelake.privacy"} <= set(modules)
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
