"""Five bridges to what the Python policy SDK (pulumi-policy) keeps to itself.

1. `report_advisory`: the SDK reports every violation at the policy's enforcement level, but a
   used exemption must be visible in review without blocking, i.e. an ADVISORY diagnostic from
   the exempted policy. The SDK's `report_violation` callback closes over the AnalyzeResponse it
   appends to; we let it append, then lower the new diagnostics to ADVISORY.
2. `request_secret_paths`: the SDK unwraps secret values before validators see them, yet a Docker
   env entry that comes from a Pulumi secret is exactly what `docker-no-literal-secrets` wants to
   allow. We read the secret markers from the AnalyzeRequest being served.
3. `share_request_properties`: the SDK turns a request's properties into the validator's `props`
   once per policy (MessageToDict, deserialize, unknown-checking proxy), which with twenty
   policies is most of the pack's time on a large stack. Within one Analyze or AnalyzeStack
   call, each step (and `per_call` functions such as our `plain`), the resource options and
   the provider are memoized on the identity of their input, so the policies share one
   read-only copy. Nothing in the pack mutates props. Within such a call the steps are also
   deferred until a policy reads the properties (`Deferred`): AnalyzeStack converts every
   resource of the stack and its provider up front, though each stack policy reads a few
   types (a CRD or a Service is never read), and `plain` of the SDK's proxy is the
   deserialized properties themselves, without building the proxy it would unwrap.
   The conversion itself (json_format.MessageToDict, pure Python in the protobuf runtime)
   is, for a Struct, a direct walk of it (`struct_to_dict`) giving exactly what
   json_format gives, for the protobuf releases it was read from (`PROTOBUF_READ` up to
   `PROTOBUF_BELOW`; json_format itself for any other).
4. `skip_other_types`: for every Analyze call the SDK builds each resource policy's arguments
   (options, provider, config, the props proxy) and reconfigures the runtime from the
   environment before the policy can look at the resource type, though most policies apply to
   a few types only: that is most of the pack's time per resource. Within an Analyze call, the
   servicer's policy list yields only the policies registered for the request's type
   (`applies_to`), and the runtime is configured once per process (its environment never
   changes). AnalyzeStack likewise builds every stack policy's view of every resource of the
   stack; there the stack policies get the resources of the types they registered, which
   they would otherwise skip themselves.
5. Remediate: the engine calls it before every Analyze, and the SDK deserializes the request's
   properties before it looks for a policy at the `remediate` level; with none configured its
   answer is empty whatever the properties, so that answer is given at once.

All degrade safely if the SDK changes shape: the exemption is then reported at the policy's own
level (still visible), env values count as literal, properties are deserialized per policy
again (a deferred value is a Mapping of the value the SDK would have made, made on first
use), every policy sees every resource, and Remediate runs the SDK's own way; a protobuf
release outside those the Struct walk was read from converts with json_format. tests/policies/
pins the first two (test_exemptions.py, test_secret_env.py), runs every policy through the
third and fourth, compares the Struct walk with json_format (test_struct_conversion.py, which
also fails on another protobuf release) and the fifth with the SDK's own answer (test_pack.py).
"""

from __future__ import annotations

import functools
import gc
import math
import re
import sys
import threading
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import google.protobuf
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2

# The engine's marker for secret values inside a protobuf Struct (sdk/go/common/resource/sig).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

Path = tuple[str | int, ...]


def _closure_value(function: Callable[..., Any], name: str) -> Any:
    code = getattr(function, "__code__", None)
    closure = getattr(function, "__closure__", None)
    if code is None or closure is None or name not in code.co_freevars:
        return None
    try:
        return closure[code.co_freevars.index(name)].cell_contents
    except ValueError:
        return None


def report_advisory(
    report_violation: Callable[..., None], message: str, urn: str | None = None
) -> None:
    """Reports `message` as an ADVISORY diagnostic of the calling policy, whatever its level."""
    response = _closure_value(report_violation, "response")
    if not isinstance(response, analyzer_pb2.AnalyzeResponse):
        report_violation(message, urn)
        return
    start = len(response.diagnostics)
    report_violation(message, urn)
    for diagnostic in response.diagnostics[start:]:
        diagnostic.enforcementLevel = analyzer_pb2.ADVISORY
        # Without the description prefix the SDK adds, so the message starts with "exempted:".
        diagnostic.message = message


def _secret_paths(value: Any, path: Path, found: set[Path]) -> None:
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            found.add(path)
            _secret_paths(value.get("value"), path, found)
            return
        for key, child in value.items():
            _secret_paths(child, (*path, key), found)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            _secret_paths(child, (*path, index), found)


def request_secret_paths() -> set[Path] | None:
    """Property paths marked secret in the AnalyzeRequest being served; None if not found."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "Analyze":
            request = frame.f_locals.get("request")
            if isinstance(request, analyzer_pb2.AnalyzeRequest):
                found: set[Path] = set()
                # The conversion the SDK made of these properties for this call, if any.
                _secret_paths(_forced(_shared_to_dict(request.properties)), (), found)
                return found
        frame = frame.f_back
    return None


_memo = threading.local()
"""Per thread: the memo of the Analyze/AnalyzeStack call being served (`cache`, None outside
one) and whether its conversions are deferred (`defer`: AnalyzeStack)."""

F = TypeVar("F", bound=Callable[..., Any])


def per_call(function: F) -> F:
    """`function`, memoized on the identity of its first argument for the duration of the
    Analyze or AnalyzeStack call being served (a plain call outside one)."""

    @functools.wraps(function)
    def memoized(value: Any, *args: Any) -> Any:
        cache: dict[tuple[Any, ...], tuple[Any, Any]] | None = getattr(_memo, "cache", None)
        if cache is None:
            return function(value, *args)
        key = (function, id(value), args)
        hit = cache.get(key)
        if hit is not None and hit[0] is value:
            return hit[1]
        result = function(value, *args)
        # Keeping `value` alive keeps its id unique until the call ends.
        cache[key] = (value, result)
        return result

    return memoized  # type: ignore[return-value]


def _call_scoped(method: Callable[..., Any], *, defer: bool = False) -> Callable[..., Any]:
    @functools.wraps(method)
    def scoped(self: Any, request: Any, context: Any) -> Any:
        _memo.cache = {}
        _memo.defer = defer
        # The call builds millions of short-lived, acyclic objects (reference counting frees
        # them); the cycle collector would rescan them over and over, more than half of a
        # large AnalyzeStack's time. It runs again as soon as the call ends.
        gc.disable()
        try:
            return method(self, request, context)
        finally:
            _memo.cache = None
            _memo.defer = False
            gc.enable()

    return scoped


def _remediate_when_configured(method: Callable[..., Any]) -> Callable[..., Any]:
    from pulumi_policy import EnforcementLevel

    @functools.wraps(method)
    def remediate(self: Any, request: Any, context: Any) -> Any:
        policies = getattr(self, "_PolicyAnalyzerServicer__policies", None)
        level = getattr(self, "_get_enforcement_level", None)
        if policies is None or level is None:
            return method(self, request, context)
        if any(level(policy) == EnforcementLevel.REMEDIATE for policy in policies):
            return method(self, request, context)
        return analyzer_pb2.RemediateResponse()

    return remediate


class Deferred(Mapping[str, Any]):
    """What one of the SDK's conversion steps returns inside an AnalyzeStack call (and its
    unknown-checking proxy inside an Analyze call): its result, made on first use. As a
    Mapping it is exactly that result, for any reader."""

    __slots__ = ("_make", "_value", "source")

    def __init__(self, make: Callable[[], Any], source: Any = None) -> None:
        self._make: Callable[[], Any] | None = make
        self._value: Any = None
        self.source = source
        """For the proxy: the deserialized properties it wraps (maybe a Deferred itself)."""

    def value(self) -> Any:
        if self._make is not None:
            self._value = self._make()
            self._make = None
        return self._value

    def __getitem__(self, key: str) -> Any:
        return self.value()[key]

    def __iter__(self) -> Iterator[str]:
        # The SDK's proxy has the keys of what it wraps: a policy that only asks whether there
        # are properties never makes it build the proxy.
        return iter(self.value() if self.source is None else _forced(self.source))

    def __len__(self) -> int:
        return len(self.value() if self.source is None else _forced(self.source))


# By exact type: Deferred has no subclass, and isinstance of a Mapping asks its ABC, for
# every conversion step and every `plain` of every policy.
def _forced(value: Any) -> Any:
    return value.value() if type(value) is Deferred else value


def deserialized(value: Any) -> Any:
    """The deserialized properties behind `value` when it is the SDK's unknown-checking proxy
    of them made in this call (unwrapping that proxy gives exactly them), else None."""
    if type(value) is Deferred and value.source is not None:
        return _forced(value.source)
    return None


def _deferred_in_stack(step: Callable[..., Any]) -> Callable[..., Any]:
    """`step`, deferred while an AnalyzeStack call is served, else run at once."""

    @functools.wraps(step)
    def deferring(value: Any, *args: Any) -> Any:
        if getattr(_memo, "defer", False):
            return Deferred(lambda: step(_forced(value), *args))
        return step(_forced(value), *args)

    return deferring


def _proxy_deferred(proxy: Callable[..., Any]) -> Callable[..., Any]:
    """The SDK's unknown-checking proxy, built only if it is read, within an Analyze or
    AnalyzeStack call; `deserialized` gives what it wraps without building it."""

    @functools.wraps(proxy)
    def deferring(value: Any, *args: Any) -> Any:
        if getattr(_memo, "cache", None) is None:
            return proxy(_forced(value), *args)
        return Deferred(lambda: proxy(_forced(value), *args), source=value)

    return deferring


def _per_call_method(method: Callable[..., Any]) -> Callable[..., Any]:
    """A servicer method of one request argument, memoized per call like `per_call`."""
    memoized = per_call(lambda request, self: method(self, request))

    @functools.wraps(method)
    def shared(self: Any, request: Any) -> Any:
        return memoized(request, self)

    return shared


PROTOBUF_READ = "5.29.6"
"""The protobuf release whose google/protobuf/json_format.py `struct_to_dict` follows."""
PROTOBUF_BELOW = "5.30"
"""The first release it is not known to hold for: from there on json_format converts again
(tests/policies/test_struct_conversion.py fails until json_format.py is re-read)."""

# json_format.py of protobuf 5.29.6, _Printer._ValueMessageToJsonObject: the messages of the
# ValueError a non-finite number raises (a Value cannot carry one in JSON).
_INFINITY_ERROR = (
    "Fail to serialize Infinity for Value.number_value, which would parse as string_value"
)
_NAN_ERROR = "Fail to serialize NaN for Value.number_value, which would parse as string_value"


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def struct_walk_holds(version: str) -> bool:
    """Whether `struct_to_dict` is json_format's conversion for protobuf `version`."""
    return _release(PROTOBUF_READ) <= _release(version) < _release(PROTOBUF_BELOW)


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """`json_format.MessageToDict(struct)` by a direct walk, in about 60% of its time.

    As protobuf 5.29.6's google/protobuf/json_format.py converts a Struct
    (_Printer._MessageToJsonObject, _StructMessageToJsonObject, _ValueMessageToJsonObject,
    _ListValueMessageToJsonObject, _FieldToJsonObject): keys in the map's iteration order,
    numbers as the doubles they are, strings and booleans as they are, an unset kind or
    null_value as None, Infinity and NaN a ValueError; no SerializeToJsonError wraps it, as
    a Struct is a well-known type and never a regular message there.
    """
    fields = struct.fields
    # Keys, then a lookup each, as json_format iterates: the map's `items()` is the Python
    # view of collections.abc, slower than the two calls into upb.
    return {key: _value(fields[key]) for key in fields}


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    # The kinds from the most frequent in Kubernetes objects to the least.
    if kind == "string_value":
        return value.string_value
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [_value(item) for item in value.list_value.values]
    if kind == "number_value":
        number = value.number_value
        if math.isinf(number):
            raise ValueError(_INFINITY_ERROR)
        if math.isnan(number):
            raise ValueError(_NAN_ERROR)
        return number
    if kind == "bool_value":
        return value.bool_value
    return None


_STRUCT_WALK = struct_walk_holds(google.protobuf.__version__)


def message_to_dict(message: Any, *args: Any, **kwargs: Any) -> Any:
    """`json_format.MessageToDict(message, *args, **kwargs)`: a Struct without other arguments
    by `struct_to_dict` (where it holds for the installed protobuf), anything else by it."""
    if _STRUCT_WALK and not args and not kwargs and isinstance(message, struct_pb2.Struct):
        return struct_to_dict(message)
    return json_format.MessageToDict(message, *args, **kwargs)


_shared_to_dict = per_call(_deferred_in_stack(message_to_dict))
"""`message_to_dict`, shared within the call being served and deferred in AnalyzeStack."""


def json_format_shim() -> types.SimpleNamespace:
    """The SDK's json_format module, its MessageToDict `_shared_to_dict` (keyword arguments,
    which the memo does not key on, go to json_format at once)."""
    shim = types.SimpleNamespace(
        **{
            name: getattr(json_format, name)
            for name in dir(json_format)
            if not name.startswith("__")
        }
    )

    def to_dict(message: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            return json_format.MessageToDict(message, *args, **kwargs)
        return _shared_to_dict(message, *args)

    shim.MessageToDict = to_dict
    return shim


def share_request_properties() -> bool:
    """Lets the policies of one call share the deserialized properties, made when first read;
    False if the SDK no longer has the shape this relies on (then nothing is changed)."""
    from pulumi_policy import policy as sdk

    servicer = getattr(sdk, "_PolicyAnalyzerServicer", None)
    names = ("json_format", "deserialize_properties", "unknown_checking_proxy")
    methods = ("_get_resource_options", "_get_provider_resource")
    if servicer is None or not all(hasattr(sdk, name) for name in names):
        return False
    if not all(hasattr(servicer, name) for name in methods):
        return False
    if getattr(servicer, "_safeguard_shared", False):
        return True
    sdk.json_format = json_format_shim()
    sdk.deserialize_properties = per_call(_deferred_in_stack(sdk.deserialize_properties))
    sdk.unknown_checking_proxy = per_call(_proxy_deferred(sdk.unknown_checking_proxy))
    for name in methods:
        setattr(servicer, name, _per_call_method(getattr(servicer, name)))
    servicer.Analyze = _call_scoped(servicer.Analyze)
    servicer.AnalyzeStack = _call_scoped(servicer.AnalyzeStack, defer=True)
    servicer.Remediate = _remediate_when_configured(servicer.Remediate)
    servicer._safeguard_shared = True
    return True


_serving = threading.local()
"""Per thread: the type token of the Analyze request being served, or None."""


def applies_to(policy: Any, resource_types: frozenset[str]) -> Any:
    """Registers that `policy` (a resource or stack policy) only looks at resources of
    `resource_types`."""
    policy._safeguard_types = resource_types
    return policy


class _PoliciesFor(list):  # type: ignore[type-arg]
    """The servicer's policy list, iterated as the policies for the type being analyzed."""

    def __iter__(self) -> Any:
        wanted = getattr(_serving, "type", None)
        if wanted is None:
            return super().__iter__()
        return (
            p
            for p in super().__iter__()
            if getattr(p, "_safeguard_types", None) is None or wanted in p._safeguard_types
        )


def skip_other_types() -> bool:
    """Lets Analyze run only the resource policies registered for the request's type; False if
    the SDK no longer has the shape this relies on (then nothing is changed)."""
    from pulumi_policy import StackValidationPolicy
    from pulumi_policy import policy as sdk

    servicer = getattr(sdk, "_PolicyAnalyzerServicer", None)
    configure = getattr(servicer, "_configure_runtime_settings", None)
    if servicer is None or configure is None or not hasattr(servicer, "Analyze"):
        return False
    if not hasattr(servicer, "AnalyzeStack"):
        return False
    if getattr(servicer, "_safeguard_typed", False):
        return True
    analyze = servicer.Analyze
    configured = threading.Event()

    @functools.wraps(analyze)
    def typed(self: Any, request: Any, context: Any) -> Any:
        policies = getattr(self, "_PolicyAnalyzerServicer__policies", None)
        if isinstance(policies, list) and not isinstance(policies, _PoliciesFor):
            self._PolicyAnalyzerServicer__policies = _PoliciesFor(policies)
        _serving.type = request.type
        try:
            return analyze(self, request, context)
        finally:
            _serving.type = None

    @functools.wraps(configure)
    def once(self: Any) -> None:
        if not configured.is_set():
            configure(self)
            configured.set()

    analyze_stack = servicer.AnalyzeStack

    @functools.wraps(analyze_stack)
    def typed_stack(self: Any, request: Any, context: Any) -> Any:
        policies = getattr(self, "_PolicyAnalyzerServicer__policies", None) or ()
        stack_policies = [p for p in policies if isinstance(p, StackValidationPolicy)]
        types = [getattr(p, "_safeguard_types", None) for p in stack_policies]
        fields = [field.name for field, _ in request.ListFields()]
        if stack_policies and None not in types and fields in (["resources"], []):
            wanted = frozenset().union(*types)
            request = type(request)(resources=[r for r in request.resources if r.type in wanted])
        return analyze_stack(self, request, context)

    servicer.Analyze = typed
    servicer.AnalyzeStack = typed_stack
    servicer._configure_runtime_settings = once
    servicer._safeguard_typed = True
    return True
