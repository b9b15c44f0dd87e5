"""`changelake produce` (being built; see the open issue that owns it)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI (nothing yet)."""
    del app
