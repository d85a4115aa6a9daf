"""The project's name, its root directory and the root stack's type token: what every part of
the offline tool names, in a module that imports nothing, so that checking manifests never pays
for the program's imports (the stack settings, pydantic, the Kubernetes SDK)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

PROJECT: Final = "safeguard"
PROJECT_ROOT: Final = Path(__file__).resolve().parents[2]
ROOT_STACK_TYPE: Final = "pulumi:pulumi:Stack"
"""`pulumi:pulumi:Stack`, the type of the resource every other one descends from."""
