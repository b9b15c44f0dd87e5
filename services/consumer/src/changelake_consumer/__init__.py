"""changelake consumer service."""
