"""changelake producer service."""
