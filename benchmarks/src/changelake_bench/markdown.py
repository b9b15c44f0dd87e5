"""Render saved bench results as Markdown: ``python -m changelake_bench.markdown FILE…``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from changelake_bench.report import markdown


def main(argv: list[str] | None = None) -> None:
    """Print one Markdown table per bench result found in the given JSON files."""
    for name in argv if argv is not None else sys.argv[1:]:
        loaded = json.loads(Path(name).read_text(encoding="utf-8"))
        for doc in loaded if isinstance(loaded, list) else [loaded]:
            m = doc["machine"]
            sys.stdout.write(f"### {doc['bench']}\n\n")
            sys.stdout.write(
                f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
                f"load average at start {m.get('load_avg_at_start')}.\n\n"
            )
            sys.stdout.write(markdown(doc) + "\n\n")
            for note in doc.get("notes", []):
                sys.stdout.write(f"- {note}\n")
            sys.stdout.write("\n")


if __name__ == "__main__":
    main()
