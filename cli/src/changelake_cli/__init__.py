"""The ``changelake`` command: demo, local stack, produce, consumer, catalog, query.

``changelake bench`` comes with the changelake-bench distribution (entry point).
"""
