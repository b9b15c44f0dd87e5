"""Consumer test configuration (builders live in changelake_consumer.testing)."""
