"""Plain resource properties and typed, path-aware access to them.

The policy SDK hands validators proxies that raise on unknown values. Policies here unwrap them
into plain dicts and lists once, and read fields through `Findings.field`, which records unknown
and malformed values instead of raising, so one unknown field never hides the rest of a check.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from _sdk import deserialized
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    _DictProxy,
    _ListProxy,
)

UNKNOWN_SENTINELS: Final = frozenset(
    {
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_STRING_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_OBJECT_VALUE,
    }
)


class Marker:
    """A field value that cannot be judged: not known yet, or of the wrong type."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"<{self._name}>"


UNKNOWN: Final = Marker("unknown")
MALFORMED: Final = Marker("malformed")

# Kubernetes integers travel as protobuf numbers, i.e. floats; INT accepts integral floats.
INT: Final = "int"

_TYPE_NAMES: Final[dict[type, str]] = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
}


def is_unknown(value: Any) -> bool:
    """True for the engine's sentinels of values not known until the update runs."""
    return isinstance(value, str) and value in UNKNOWN_SENTINELS


def known(value: Any) -> bool:
    """True unless `value` is UNKNOWN or MALFORMED (None, i.e. missing, counts as known)."""
    return not isinstance(value, Marker)


def plain(value: Any) -> Any:
    """Unwraps the SDK's unknown-checking proxies into plain dicts and lists, keeping sentinels."""
    shared = deserialized(value)
    if shared is not None:
        return shared
    if isinstance(value, _DictProxy | _ListProxy):
        value = value["__target"]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def join(path: str, key: str | int) -> str:
    """`spec` + `containers` -> `spec.containers`; `containers` + 0 -> `containers[0]`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def describe(value: Any) -> str:
    """A short, safe rendering of a value for messages (never a whole config file)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # protobuf carries every number as a double
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Findings:
    """What one policy found on one resource: violations, unknown paths, malformed fields."""

    def __init__(self, subject: str = "") -> None:
        self.subject = subject
        """How messages name the resource, e.g. `Deployment 'api'`."""
        self.violations: list[str] = []
        self.unknown_paths: list[str] = []
        self._malformed: set[str] = set()
        # Sets next to the ordered lists: a stack policy may report thousands of findings.
        self._seen_violations: set[str] = set()
        self._seen_unknown: set[str] = set()

    def fail(self, message: str) -> None:
        if message not in self._seen_violations:
            self._seen_violations.add(message)
            self.violations.append(message)

    def unknown(self, path: str) -> None:
        if path not in self._seen_unknown:
            self._seen_unknown.add(path)
            self.unknown_paths.append(path)

    def malformed(self, path: str, value: Any, expected: str) -> None:
        if path in self._malformed:
            return
        self._malformed.add(path)
        prefix = f"{self.subject}: " if self.subject else ""
        number = isinstance(value, int | float) and not isinstance(value, bool)
        kind = "number" if number else type(value).__name__
        self.fail(
            f"{prefix}{path} is {describe(value)} ({kind}) but must be {expected}; "
            "the policy cannot verify this field until it has the right type."
        )

    def check_value(self, value: Any, path: str, kind: type | str | tuple[type, ...]) -> Any:
        """`value` if it has type `kind`; None if missing; UNKNOWN or MALFORMED (recorded)."""
        if isinstance(value, Marker):
            return value
        if value is None:
            return None
        if is_unknown(value):
            self.unknown(path)
            return UNKNOWN
        if kind == INT:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.malformed(path, value, "an integer")
                return MALFORMED
            if isinstance(value, float) and not value.is_integer():
                self.malformed(path, value, "an integer")
                return MALFORMED
            return int(value)
        assert not isinstance(kind, str)
        # A value of exactly a wanted type is one the general test below accepts (bool cannot
        # be subclassed): most values are, and the test builds tuples and asks an ABC.
        if type(value) is kind or (isinstance(kind, tuple) and type(value) in kind):
            return value
        kinds = kind if isinstance(kind, tuple) else (kind,)
        accepted = tuple(Mapping if k is dict else k for k in kinds)
        if not isinstance(value, accepted) or (bool not in kinds and isinstance(value, bool)):
            expected = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            self.malformed(path, value, expected)
            return MALFORMED
        return value

    def field(
        self, parent: Any, key: str, parent_path: str, kind: type | str | tuple[type, ...]
    ) -> Any:
        """Reads `parent[key]`: the value, None if missing, or UNKNOWN/MALFORMED.

        A parent that is itself missing, unknown or malformed passes through unchanged, so
        navigation chains (`field(field(c, "securityContext"), "runAsUser")`) stay flat.
        """
        if parent is None or isinstance(parent, Marker):
            return parent
        # Properties are dicts; only other Mappings need the ABC's isinstance.
        if type(parent) is not dict and not isinstance(parent, Mapping):
            return MALFORMED
        return self.check_value(parent.get(key), join(parent_path, key), kind)

    def items(
        self, value: Any, path: str, kind: type | str | tuple[type, ...]
    ) -> Iterator[tuple[int, str, Any]]:
        """Yields (index, element path, element) of a list, skipping unknown/malformed ones."""
        if not isinstance(value, list):
            return
        for index, element in enumerate(value):
            element_path = join(path, index)
            checked = self.check_value(element, element_path, kind)
            if checked is None or isinstance(checked, Marker):
                continue
            yield index, element_path, checked
