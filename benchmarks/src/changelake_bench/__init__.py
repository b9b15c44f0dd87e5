"""`changelake bench`: consumer, query, freshness and catalog benchmarks against peer designs."""
