"""The pack's conversion of a request's properties (`_sdk.struct_to_dict`, the SDK's
`json_format.MessageToDict` of a Struct) gives exactly what protobuf's json_format gives: on the
properties the tests and the gate send, on edge cases, and as the wire delivers them; anything
but a plain Struct still goes to json_format; and only for the protobuf releases it was read
from."""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import google.protobuf
import pytest
from google.protobuf import json_format, struct_pb2
from packaging.version import Version
from pulumi.runtime.proto import analyzer_pb2

from infra.offline.analyzer import Resource, Secret, to_struct
from infra.offline.check import load_manifests
from infra.offline.check.programs import subjects_of_run
from infra.offline.wire import UNKNOWN
from policies import _sdk
from tests.support import manifests
from tests.support.deployed import stack_run
from tests.support.policies import (
    TYPES,
    container,
    docker,
    ingress,
    init_container,
    network_policy,
    pdb,
    workload,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "manifests"


def _pack_inputs() -> Iterator[Resource]:
    """What tests/policies sends the pack: every builder, with secrets and unknowns."""
    for kind in TYPES:
        yield workload(kind, container(), init_container(), replicas=3)
    yield workload("Deployment", container(env=UNKNOWN, image=UNKNOWN))
    yield docker()
    yield docker(envs=Secret(["DB_PASSWORD=hunter2", "LOG_LEVEL=info"]), user=UNKNOWN)
    yield network_policy({"app.kubernetes.io/name": "api"})
    yield network_policy(None)
    yield ingress({"nginx.ingress.kubernetes.io/enable-cors": "true"})
    yield pdb({"app.kubernetes.io/name": "api"})


def _gate_inputs() -> Iterator[Resource]:
    """The gate's benchmark stack and the manifests tests/offline checks."""
    for index in range(3):
        for document in manifests.workload(index):
            yield Resource(type=document["kind"], name=f"w{index}", properties=document)
    yield Resource(type="Deployment", name="d", properties=manifests.deployment("d", "ns", 2))
    for directory in ("safe", "unsafe"):
        yield from (subject.resource for subject in load_manifests(FIXTURES / directory))


def _stack_inputs() -> Iterator[Resource]:
    """The project's own stacks under mocks, as `check --stack` sends them."""
    for stack in ("dev", "staging", "production"):
        for subject in subjects_of_run(stack_run(stack), stack):
            yield subject.resource
            if subject.resource.provider is not None:
                yield Resource(
                    type=subject.resource.provider.type,
                    name=subject.resource.provider.name,
                    properties=subject.resource.provider.properties,
                )


CORPORA: dict[str, Callable[[], Iterator[Resource]]] = {
    "pack inputs": _pack_inputs,
    "gate manifests": _gate_inputs,
    "project stacks": _stack_inputs,
}


def _structs(resources: Iterator[Resource]) -> list[struct_pb2.Struct]:
    """Each resource's inputs and outputs as the pack gets them: built as the client builds
    them, and parsed from the wire (a parsed map may iterate in another order)."""
    structs = []
    for resource in resources:
        for properties in (resource.properties, resource.outputs):
            if properties is not None:
                built = to_struct(properties)
                structs += [built, struct_pb2.Struct.FromString(built.SerializeToString())]
    return structs


def exact(value: Any) -> str:
    """`value` with what `==` overlooks: 1.0 against 1 or True, -0.0 against 0.0, key order."""
    return repr(value)


def _kinds(struct: struct_pb2.Struct) -> set[str]:
    found = set()
    pending = list(struct.fields.values())
    while pending:
        value = pending.pop()
        kind = value.WhichOneof("kind")
        found.add(kind)
        if kind == "struct_value":
            pending += value.struct_value.fields.values()
        elif kind == "list_value":
            pending += value.list_value.values
    return found


# --- the properties the tests send ------------------------------------------------------------


@pytest.mark.parametrize("corpus", CORPORA)
def test_the_walk_gives_json_formats_dict_on_the_properties_the_tests_send(corpus: str) -> None:
    structs = _structs(CORPORA[corpus]())

    assert len(structs) >= 20, "the corpus itself is broken"
    assert {"string_value", "struct_value", "list_value", "number_value", "bool_value"} <= set(
        kind for struct in structs for kind in _kinds(struct)
    )
    for struct in structs:
        assert exact(_sdk.struct_to_dict(struct)) == exact(json_format.MessageToDict(struct))


# --- edge cases -------------------------------------------------------------------------------


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def _nested(depth: int) -> dict[str, Any]:
    value: Any = {"leaf": [1, "x", None, True]}
    for level in range(depth):
        value = {f"level{level}": [value, {}]} if level % 2 else {f"level{level}": value}
    return value


EDGE_CASES: dict[str, dict[str, Any]] = {
    "empty": {},
    "empty containers": {"s": {}, "l": [], "ll": [[]], "ls": [{}], "sl": {"a": [{"b": []}]}},
    "null": {"n": None, "ln": [None, None], "sn": {"n": None}},
    "booleans": {"t": True, "f": False, "l": [True, False, True]},
    "zeros": {"zero": 0, "negative zero": -0.0, "l": [0.0, -0.0]},
    "integers as doubles": {"one": 1, "minus": -1, "big": 2**53 + 1, "huge": 10**30},
    "floats": {
        "max": 1.7976931348623157e308,
        "min": -1.7976931348623157e308,
        "denormal": 5e-324,
        "tenth": 0.1,
        "small": 1e-7,
        "third": 1 / 3,
    },
    "strings": {"empty": "", "unicode": "ünïcödé ✓ 🔑", "nul": "a\x00b", "long": "x" * 100_000},
    "unicode keys": {"ключ": 1, "键": "v", "🔑": True, "": None, "a.b": [], "$(VAR)": {}},
    "mixed list": {"l": [1, "a", True, None, {"b": []}, [2.5, [False]]]},
    "many keys": {f"key{(i * 7919) % 1000:04d}": i for i in range(1000)},
    "deep nesting": _nested(40),
}


@pytest.mark.parametrize("case", EDGE_CASES)
@pytest.mark.parametrize("wire", [False, True], ids=["built", "parsed"])
def test_the_walk_gives_json_formats_dict_on_edge_cases(case: str, wire: bool) -> None:
    struct = _struct(EDGE_CASES[case])
    if wire:
        struct = struct_pb2.Struct.FromString(struct.SerializeToString())

    assert exact(_sdk.struct_to_dict(struct)) == exact(json_format.MessageToDict(struct))


def test_a_value_without_a_kind_is_none_as_in_json_format() -> None:
    struct = struct_pb2.Struct()
    struct.fields.get_or_create("unset")
    struct.fields["list"].list_value.values.add()

    assert struct.fields["unset"].WhichOneof("kind") is None
    assert _sdk.struct_to_dict(struct) == json_format.MessageToDict(struct)
    assert _sdk.struct_to_dict(struct) == {"unset": None, "list": [None]}


def _with_number(number: float, where: str) -> struct_pb2.Struct:
    struct = _struct({"before": "x", "nested": {"list": ["y"]}})
    if where == "top":
        struct.fields["n"].number_value = number
    elif where == "nested":
        struct.fields["nested"].struct_value.fields["n"].number_value = number
    else:
        struct.fields["nested"].struct_value.fields["list"].list_value.values.add(
            number_value=number
        )
    return struct


@pytest.mark.parametrize("number", [math.inf, -math.inf, math.nan], ids=["inf", "-inf", "nan"])
@pytest.mark.parametrize("where", ["top", "nested", "list"])
def test_infinity_and_nan_raise_json_formats_error(number: float, where: str) -> None:
    struct = _with_number(number, where)

    with pytest.raises(ValueError) as expected:
        json_format.MessageToDict(struct)
    with pytest.raises(ValueError) as got:
        _sdk.struct_to_dict(struct)
    with pytest.raises(ValueError) as shimmed:
        _sdk.json_format_shim().MessageToDict(struct)

    assert type(got.value) is type(expected.value) is type(shimmed.value)
    assert str(got.value) == str(expected.value) == str(shimmed.value)
    assert ("NaN" if math.isnan(number) else "Infinity") in str(got.value)


# --- anything else goes to json_format --------------------------------------------------------


def _options() -> analyzer_pb2.AnalyzerResourceOptions:
    return analyzer_pb2.AnalyzerResourceOptions(
        deleteBeforeReplace=True, ignoreChanges=["spec"], parent="urn:pulumi:s::p::t::n"
    )


def _request() -> analyzer_pb2.AnalyzeRequest:
    return analyzer_pb2.AnalyzeRequest(
        type=TYPES["Deployment"],
        name="api",
        properties=to_struct(workload("Deployment").properties),
        options=_options(),
    )


def _stack_configure() -> analyzer_pb2.AnalyzerStackConfigureRequest:
    """A message whose field names are not JSON's (dry_run, config_secret_keys)."""
    return analyzer_pb2.AnalyzerStackConfigureRequest(
        stack="dev", dry_run=True, config_secret_keys=["db:password"]
    )


@pytest.mark.parametrize(
    "convert",
    [_sdk.message_to_dict, _sdk.json_format_shim().MessageToDict],
    ids=["message_to_dict", "shim"],
)
def test_other_messages_and_other_arguments_go_to_json_format(
    convert: Callable[..., Any],
) -> None:
    value = struct_pb2.Value(string_value="x")
    listed = struct_pb2.ListValue()
    listed.extend([1, "a", None])
    messages = (_options(), _request(), _stack_configure(), value, listed)

    for message in messages:
        assert exact(convert(message)) == exact(json_format.MessageToDict(message))
    assert convert(_stack_configure()) == {
        "stack": "dev",
        "dryRun": True,
        "configSecretKeys": ["db:password"],
    }
    # Other arguments, by keyword or position, reach json_format: names as declared.
    declared = {"stack": "dev", "dry_run": True, "config_secret_keys": ["db:password"]}
    assert convert(_stack_configure(), preserving_proto_field_name=True) == declared
    assert convert(_stack_configure(), False, True) == declared
    everything = json_format.MessageToDict(_options(), always_print_fields_with_no_presence=True)
    assert convert(_options(), always_print_fields_with_no_presence=True) == everything
    assert everything["protect"] is False  # a default only that argument prints
    assert exact(convert(_request(), preserving_proto_field_name=True)) == exact(
        json_format.MessageToDict(_request(), preserving_proto_field_name=True)
    )


def test_the_shim_is_json_format_but_for_message_to_dict() -> None:
    shim = _sdk.json_format_shim()

    assert shim.ParseDict is json_format.ParseDict
    assert shim.MessageToJson is json_format.MessageToJson
    assert shim.Parse is json_format.Parse
    assert shim.MessageToDict is not json_format.MessageToDict


# --- the protobuf releases it holds for ---------------------------------------------------------


def test_the_installed_protobuf_is_within_what_the_walk_was_read_from() -> None:
    installed = Version(importlib.metadata.version("protobuf"))

    assert installed < Version(_sdk.PROTOBUF_BELOW), (
        f"protobuf {installed} is installed, but policies/_sdk.py#struct_to_dict follows "
        f"google/protobuf/json_format.py of {_sdk.PROTOBUF_READ} and holds below "
        f"{_sdk.PROTOBUF_BELOW} only (the pack converts with json_format again meanwhile). "
        "Re-read json_format.py's _Printer (_MessageToJsonObject, _StructMessageToJsonObject, "
        "_ValueMessageToJsonObject, _ListValueMessageToJsonObject, _FieldToJsonObject) at the "
        "installed version, fix struct_to_dict where it moved, then set PROTOBUF_READ and "
        "raise PROTOBUF_BELOW."
    )
    assert installed >= Version(_sdk.PROTOBUF_READ), (
        f"protobuf {installed} is older than {_sdk.PROTOBUF_READ}, the version "
        "struct_to_dict was read from: install requirements.txt"
    )
    assert google.protobuf.__version__ == str(installed), "the pack reads this one"
    assert _sdk.struct_walk_holds(google.protobuf.__version__)


@pytest.mark.parametrize(
    ("version", "holds"),
    [
        ("5.29.6", True),
        ("5.29.11", True),
        ("5.29.5", False),
        ("5.30.0rc1", False),
        ("5.30.0", False),
        ("6.31.1", False),
        ("4.25.3", False),
    ],
)
def test_outside_those_releases_the_pack_converts_with_json_format(
    version: str, holds: bool
) -> None:
    assert _sdk.struct_walk_holds(version) is holds
