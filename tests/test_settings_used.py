"""Every documented setting is read by code: no setting that a user can set to no effect."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings
from test_readme import SETTINGS_MODULES

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = [ROOT / "libs", ROOT / "services", ROOT / "cli"]


def _fields() -> dict[str, str]:
    """Field name → the settings module that declares it."""
    found: dict[str, str] = {}
    for module_name in SETTINGS_MODULES:
        module = importlib.import_module(module_name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseSettings) and cls.__module__ == module.__name__:
                for field in cls.model_fields:
                    found.setdefault(field, module_name)
    return found


def _product_source() -> str:
    texts = []
    for folder in SOURCE_DIRS:
        for path in folder.rglob("*.py"):
            parts = set(path.parts)
            if "tests" in parts:
                continue
            texts.append(path.read_text())
    return "\n".join(texts)


@pytest.mark.unit
def test_every_setting_is_read_by_code() -> None:
    source = _product_source()
    unread = sorted(
        f"{module}.{field}"
        for field, module in _fields().items()
        if not re.search(rf"\.{field}\b", source)
    )
    assert unread == []
