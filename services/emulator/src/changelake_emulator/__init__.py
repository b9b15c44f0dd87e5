"""changelake emulator service."""
