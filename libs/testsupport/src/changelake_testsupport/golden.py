"""Loader of the golden Kinesis-for-DynamoDB records in ``tests/fixtures/records``.

Every service's tests reuse the same real-shaped records: the transform Lambda, the consumer's
poison-record handling and the codec all check themselves against one manifest. Entries carry
the raw bytes exactly as stored (malformed ones may not even be UTF-8) plus what a correct
decoder must produce.

The fixtures live in the source tree, not in the wheel. They are found, in order, under
``$CHANGELAKE_FIXTURES_DIR``, then by walking up from this file and from the working directory
to a folder holding ``tests/fixtures/records/manifest.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from changelake.events import Position

ENV_VAR = "CHANGELAKE_FIXTURES_DIR"
_RELATIVE = Path("tests") / "fixtures" / "records"


@dataclass(frozen=True, slots=True)
class ValidFixture:
    """A record the decoder must accept, and the event fields it must yield."""

    name: str
    path: Path
    raw: bytes
    description: str
    position: Position
    event_id: str
    table: str
    event_name: str
    event_time_us: int
    dt: str
    hour: str
    item_key: str
    is_ttl_delete: bool
    changed_attributes: tuple[str, ...]
    size_bytes: int
    expected: dict[str, Any]
    """Every expected field as in the manifest (also ``new_image_json`` etc. where given)."""

    @property
    def record(self) -> dict[str, Any]:
        """The record parsed as JSON (numbers inside images stay strings, as on the wire)."""
        parsed: dict[str, Any] = json.loads(self.raw)
        return parsed


@dataclass(frozen=True, slots=True)
class MalformedFixture:
    """A record the decoder must turn into a failure whose reason contains ``reason``."""

    name: str
    path: Path
    raw: bytes
    description: str
    position: Position
    reason: str


def fixtures_dir(root: Path | str | None = None) -> Path:
    """The folder holding ``manifest.json`` (see the module docstring for the search order)."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for folder in (start, *start.parents):
            candidate = folder / _RELATIVE
            if (candidate / "manifest.json").is_file():
                return candidate
    raise FileNotFoundError(
        f"golden fixtures not found: set {ENV_VAR} or run from the changelake source tree"
    )


@cache
def _manifest(folder: Path) -> tuple[dict[str, Any], ...]:
    doc = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return tuple(doc["fixtures"])


def load_valid(root: Path | str | None = None) -> list[ValidFixture]:
    """Every valid golden record, in manifest order."""
    folder = fixtures_dir(root)
    out: list[ValidFixture] = []
    for entry in _manifest(folder):
        if entry["kind"] != "valid":
            continue
        exp = entry["expected"]
        path = folder / entry["file"]
        out.append(
            ValidFixture(
                name=Path(entry["file"]).stem,
                path=path,
                raw=path.read_bytes(),
                description=entry["description"],
                position=Position(entry["shard_id"], entry["sequence_number"]),
                event_id=exp["event_id"],
                table=exp["table"],
                event_name=exp["event_name"],
                event_time_us=exp["event_time_us"],
                dt=exp["dt"],
                hour=exp["hour"],
                item_key=exp["item_key"],
                is_ttl_delete=exp["is_ttl_delete"],
                changed_attributes=tuple(exp["changed_attributes"]),
                size_bytes=exp["size_bytes"],
                expected=dict(exp),
            )
        )
    return out


def load_malformed(root: Path | str | None = None) -> list[MalformedFixture]:
    """Every malformed golden record, in manifest order (raw bytes, possibly not UTF-8)."""
    folder = fixtures_dir(root)
    out: list[MalformedFixture] = []
    for entry in _manifest(folder):
        if entry["kind"] != "malformed":
            continue
        path = folder / entry["file"]
        out.append(
            MalformedFixture(
                name=Path(entry["file"]).stem,
                path=path,
                raw=path.read_bytes(),
                description=entry["description"],
                position=Position(entry["shard_id"], entry["sequence_number"]),
                reason=entry["reason"],
            )
        )
    return out


def load_valid_by_name(name: str, root: Path | str | None = None) -> ValidFixture:
    """One valid fixture by file stem (e.g. ``"all_types"``); ``KeyError`` if absent."""
    for fixture in load_valid(root):
        if fixture.name == name:
            return fixture
    raise KeyError(name)
