"""PLATFORM_NAME and PLATFORM_ADDRESS: who issues the invoice documents."""

from __future__ import annotations

from controlplane.core.settings import DEFAULT_PLATFORM_ADDRESS, DEFAULT_PLATFORM_NAME, Settings


def test_the_platform_defaults_are_for_development() -> None:
    settings = Settings.from_env({})
    assert (settings.platform_name, settings.platform_address) == (DEFAULT_PLATFORM_NAME, DEFAULT_PLATFORM_ADDRESS)
    assert "development" in settings.platform_name


def test_the_platform_address_is_lines_separated_by_a_bar() -> None:
    settings = Settings.from_env(
        {"PLATFORM_NAME": "  Example Ltd ", "PLATFORM_ADDRESS": "1 Road | 10115 Berlin||Germany, EU|"}
    )
    assert settings.platform_name == "Example Ltd"
    assert settings.platform_address == ("1 Road", "10115 Berlin", "Germany, EU")
    assert Settings.from_env({"PLATFORM_ADDRESS": ""}).platform_address == ()
