"""Consumer test configuration (builders live in changelake_testsupport.person_changes)."""
