"""The ``changelake`` command: demo, local stack, produce, consumer, catalog, query, bench."""
