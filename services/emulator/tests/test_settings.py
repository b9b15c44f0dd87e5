"""Emulator settings from the environment."""

from __future__ import annotations

import pytest
from changelake_emulator.faults import FaultConfig
from changelake_emulator.settings import EmulatorSettings

pytestmark = pytest.mark.unit


def test_settings_have_no_faults_when_no_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANGELAKE_EMULATOR_DUPLICATE_RATE", "0.5")
    assert EmulatorSettings().faults() is None


def test_settings_build_fault_config_when_seed_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANGELAKE_EMULATOR_FAULT_SEED", "7")
    monkeypatch.setenv("CHANGELAKE_EMULATOR_REORDER_WINDOW", "4")
    monkeypatch.setenv("CHANGELAKE_EMULATOR_PRECISION", "MICROSECOND")
    settings = EmulatorSettings()
    assert settings.faults() == FaultConfig(seed=7, reorder_window=4)
    assert settings.emulator_precision == "MICROSECOND"
    assert (settings.emulator_host, settings.emulator_port) == ("127.0.0.1", 4566)
