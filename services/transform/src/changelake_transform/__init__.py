"""changelake transform service."""
