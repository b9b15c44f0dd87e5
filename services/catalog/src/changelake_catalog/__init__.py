"""changelake catalog service."""
