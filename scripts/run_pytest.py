"""Run pytest and treat "no tests collected" (exit 5) as the failure it is."""

from __future__ import annotations

import sys

import pytest

NO_TESTS_COLLECTED = 5


def main() -> int:
    """Run the suite with the given extra arguments; exit non-zero on any failure."""
    code = int(pytest.main(["-q", *sys.argv[1:]]))
    if code == NO_TESTS_COLLECTED:
        print("pytest collected no tests: failing the run", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
