"""Test support for changelake's tests and benchmarks (a dev-only workspace member).

In-memory fakes of the ports (:mod:`fakes`), builders of real-shaped records (:mod:`records`,
:mod:`person_changes`) and the golden fixtures' loader (:mod:`golden`). No product package
depends on it: it is installed by the workspace's dev group and by changelake-bench.
"""
