"""Per-environment settings: the one place that reads `pulumi.Config`."""

from stacks.settings import Settings, SettingsError, load_settings

__all__ = ["Settings", "SettingsError", "load_settings"]
