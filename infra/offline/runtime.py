"""Running the program without an engine: a mock monitor that does what the engine and the
providers would do with each registration, stack config from the stack file, and helpers for the
secret markers found in recorded values.

Each registration is recorded three ways: the inputs exactly as the SDK sends them to the
engine (camelCase, secrets and unknowns marked, the secret bit kept as the engine keeps it), the
inputs after the provider's Check (what every analyzer receives) and the outputs its Create
returns (what the program and AnalyzeStack receive); see `infra.offline.providers`. A `get` is
recorded as a read (`Recorded.external`), answered from the cluster a run is given, or, with
none, taken to exist.

`preview=True` runs the program as a first `pulumi preview` of the stack does: every resource
is a create, ids and whatever the providers compute (generated passwords, image digests,
container ids) are unknown, and so is everything the program derives from them.
`preview=False` runs it as the update that follows: every value is known, with deterministic
placeholders for ids, digests and generated values, so the same program always yields the same
state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.offline import providers
from infra.offline.analyzer import Options
from infra.offline.project import PROJECT, PROJECT_ROOT, ROOT_STACK_TYPE
from infra.offline.wire import UNKNOWN
from stacks import SettingsError
from stacks.settings import encrypted_placeholder

REDACTED = "[secret]"


@dataclass(frozen=True)
class Recorded:
    """One resource as the engine would have received it, checked it and created it."""

    type: str
    name: str
    inputs: dict[str, Any]
    """What the program registered, as the engine receives it (wire format)."""
    custom: bool
    urn: str = ""
    """The URN the engine gives the resource (parent types joined with `$`)."""
    parent: str = ""
    """The parent's URN: a component, or the root stack."""
    provider: str = ""
    """An explicit provider reference (`<provider urn>::<id>`); "" means the default provider."""
    dependencies: tuple[str, ...] = ()
    """URNs of the resources this one depends on."""
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per input property, the URNs its value came from."""
    checked: dict[str, Any] | None = None
    """The inputs after the provider's Check: what Remediate and Analyze get. None for
    component resources, which no provider checks."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """What the provider's Create returned (a component: what it passed to register_outputs)."""
    id: str = ""
    """The provider's id; "" while unknown (a preview) and for component resources."""
    options: Options = field(default_factory=Options)
    external: bool = False
    """Read from the provider (a `get`), not created: the engine's read step. It gets no Check,
    no Create and no policy call, and the state marks it external."""

    @property
    def kind(self) -> str:
        """Last part of the type token: Deployment, Container, RandomPassword..."""
        return self.type.rsplit(":", 1)[-1]


def _wire(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct of the SDK's wire format as plain JSON values, markers and sentinels kept."""
    return json_format.MessageToDict(struct)


def _seconds(duration: str) -> float:
    """A Go duration ("15m", "1h30m", "90s") in seconds, as the engine parses custom timeouts
    (pulumi/pulumi@v3.259.0:pkg/resource/deploy/source_eval.go, time.ParseDuration)."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"custom timeout {duration!r} is not a duration like 10m or 1h30m")
    return sum(float(n) * units[u] for n, u in parts)


class _Monitor(MockMonitor):
    """The SDK's mock monitor, with URNs built as the engine builds them (the whole chain of
    parent types, the root stack left out), and each registration checked and created the way
    the engine and the provider would (`infra.offline.providers`)."""

    def __init__(
        self,
        mocks: Mocks,
        *,
        preview: bool,
        config: Mapping[str, str],
        cluster: providers.Cluster | None = None,
    ) -> None:
        super().__init__(mocks)
        self.recorder = mocks
        self.preview = preview
        self.cluster = cluster
        self.kube = providers.kube_context(_package_config(config, "kubernetes"))
        self._thread = threading.local()
        self._loops: list[asyncio.AbstractEventLoop] = []
        self._lock = threading.Lock()

    def _own_loop(self) -> None:
        """Give the executor thread serving this call an event loop the run owns and closes.

        The SDK's monitor calls asyncio.get_event_loop() on that thread and, finding none,
        makes a loop it never closes; at interpreter exit such a loop's __del__ can find its
        self-pipe already gone ("Exception ignored in BaseEventLoop.__del__ ... Invalid file
        descriptor" on stderr, in about one run of four).
        """
        if threading.current_thread() is threading.main_thread():
            return
        if getattr(self._thread, "loop", None) is None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._thread.loop = loop
            with self._lock:
                self._loops.append(loop)

    def close_loops(self) -> None:
        """Close the loops of the executor threads (once those threads are done)."""
        with self._lock:
            loops, self._loops = self._loops, []
        for loop in loops:
            loop.close()

    def Invoke(self, request: Any) -> Any:
        self._own_loop()
        return super().Invoke(request)

    def ReadResource(self, request: Any) -> Any:
        self._own_loop()
        urn = self.make_urn(request.parent, request.type, request.name)
        secrets = tuple(request.additionalSecretOutputs)
        outputs = providers.read(request.type, request.id, self.cluster, secrets)
        self.recorder.resources.append(
            Recorded(
                type=request.type,
                name=request.name,
                inputs=_wire(request.properties),
                custom=True,
                urn=urn,
                parent=request.parent,
                provider=request.provider,
                dependencies=tuple(request.dependencies),
                outputs=outputs,
                id=request.id,
                options=Options(additional_secret_outputs=secrets),
                external=True,
            )
        )
        response = struct_pb2.Struct()
        response.update(outputs)
        return resource_pb2.ReadResourceResponse(urn=urn, properties=response)

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        if parent:
            parent_type = parent.split("::")[2]
            if parent_type != ROOT_STACK_TYPE:
                type_ = f"{parent_type}${type_}"
        stack, project = runtime_settings.get_stack(), runtime_settings.get_project()
        return f"urn:pulumi:{stack}::{project}::{type_}::{name}"

    def RegisterResource(self, request: Any) -> Any:
        self._own_loop()
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == ROOT_STACK_TYPE:
            return resource_pb2.RegisterResourceResponse(urn=urn)
        inputs = _wire(request.object)
        options = self._options(request, urn)
        checked: dict[str, Any] | None = None
        outputs: dict[str, Any] = {}
        ident = ""
        if request.type.startswith("pulumi:providers:"):
            # A provider's state is its inputs; its id is a UUID, unknown in a preview
            # (pulumi/pulumi@v3.259.0:pkg/resource/deploy/providers/registry.go#Create).
            checked = providers.annotate_secrets(providers.plain(inputs), inputs)
            outputs = dict(checked)
            ident = "" if self.preview else providers.uuid_of(urn)
        elif request.custom:
            checked = providers.check(request.type, urn, inputs, self._kube(request.provider))
            ident, outputs = providers.create(
                request.type,
                urn,
                checked,
                preview=self.preview,
                additional_secrets=tuple(request.additionalSecretOutputs),
            )
        self.recorder.resources.append(
            Recorded(
                type=request.type,
                name=request.name,
                inputs=inputs,
                custom=bool(request.custom),
                urn=urn,
                parent=request.parent,
                provider=request.provider,
                dependencies=tuple(request.dependencies),
                property_dependencies={
                    key: tuple(deps.urns) for key, deps in request.propertyDependencies.items()
                },
                checked=checked,
                outputs=outputs,
                id=ident,
                options=options,
            )
        )
        response = struct_pb2.Struct()
        response.update(outputs)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=ident, object=response)

    def RegisterResourceOutputs(self, request: Any) -> Any:
        self.recorder.component_outputs[request.urn] = _wire(request.outputs)
        return super().RegisterResourceOutputs(request)

    def _kube(self, provider: str) -> providers.KubeContext:
        if not provider:
            return self.kube
        urn = provider.rsplit("::", 1)[0]
        for recorded in self.recorder.resources:
            if recorded.urn == urn:
                return providers.kube_context(
                    {k: str(providers.plain(v)) for k, v in recorded.inputs.items()}
                )
        return self.kube

    def _options(self, request: Any, urn: str) -> Options:
        timeouts = request.customTimeouts
        aliases = list(request.aliasURNs)
        for alias in request.aliases:
            if alias.urn:
                aliases.append(alias.urn)
                continue
            spec = alias.spec
            parent = "" if spec.noParent else (spec.parentUrn or request.parent)
            urn_of = self.make_urn(parent, spec.type or request.type, spec.name or request.name)
            if spec.stack or spec.project:
                stack, project = runtime_settings.get_stack(), runtime_settings.get_project()
                rest = urn_of.split("::", 2)[2]
                urn_of = f"urn:pulumi:{spec.stack or stack}::{spec.project or project}::{rest}"
            aliases.append(urn_of)
        return Options(
            protect=request.protect,
            ignore_changes=tuple(request.ignoreChanges),
            delete_before_replace=(
                request.deleteBeforeReplace if request.deleteBeforeReplaceDefined else None
            ),
            additional_secret_outputs=tuple(request.additionalSecretOutputs),
            aliases=tuple(a for a in aliases if a != urn),
            custom_timeouts={
                key: _seconds(value)
                for key in ("create", "update", "delete")
                if (value := getattr(timeouts, key, ""))
            },
        )


def _package_config(config: Mapping[str, str], package: str) -> dict[str, str]:
    """A package's stack config without its `<package>:` prefix: what its default provider
    is configured with."""
    prefix = f"{package}:"
    return {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}


@dataclass
class Mocks(pulumi.runtime.Mocks):
    """Records every registered resource; `_Monitor` answers for them."""

    resources: list[Recorded] = field(default_factory=list)
    component_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What each component passed to register_outputs, by URN."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        raise AssertionError("_Monitor.RegisterResource answers every registration")

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        return {}, None

    def custom_resources(self) -> Iterator[Recorded]:
        """The resources a provider would create (component resources left out)."""
        return (r for r in self.resources if r.custom)


@dataclass(frozen=True)
class StackRun:
    """What running the program produced."""

    resources: list[Recorded]
    passwords: dict[str, str]
    """Generated RandomPassword results by resource name (empty in a preview: unknown)."""
    outputs: dict[str, Any]
    """The stack's exports as Python values (None where unknown)."""
    secret_outputs: frozenset[str]
    warnings: tuple[str, ...] = ()
    """What the program logged with `pulumi.log.warn`, which `pulumi preview` would show."""
    preview: bool = False
    root_urn: str = ""
    wire_outputs: dict[str, Any] = field(default_factory=dict)
    """The stack's exports in the wire format (secrets marked, unknowns as the sentinel)."""
    config: Mapping[str, str] = field(default_factory=dict)
    """The stack config the program ran with (`<namespace>:<key>` -> value)."""

    def of_type(self, suffix: str) -> list[Recorded]:
        """Custom resources the program registers (reads left out) whose type token ends with
        `suffix` (e.g. "apps/v1:Deployment")."""
        return [
            r for r in self.resources if r.custom and not r.external and r.type.endswith(suffix)
        ]


def stack_config(stack: str, root: Path = PROJECT_ROOT) -> tuple[dict[str, str], list[str]]:
    """The stack file's config in the shape the engine passes it: namespaced keys, string values
    (objects and lists as JSON). Encrypted values cannot be read here; they become a marked
    placeholder, still flagged as secret, that names a digest of the ciphertext: a new value
    gives a new placeholder (and so does re-encrypting the same value, since Pulumi's
    passphrase encryption uses a random nonce, pulumi/pulumi@v3.259.0:sdk/go/common/resource/
    config/crypt.go#encryptAES256GCGM)."""
    path = root / f"Pulumi.{stack}.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise SettingsError(stack, [f"{path.name} is not valid YAML: {error}"]) from error
    except UnicodeDecodeError as error:
        raise SettingsError(stack, [f"{path.name} is not UTF-8 text: {error}"]) from error
    section = data.get("config") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(section or {}, dict):
        where = "its top level" if not isinstance(data, dict) else "its `config:` section"
        raise SettingsError(stack, [f"{path.name}: {where} must be a mapping"])
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for raw_key, value in (section or {}).items():
        key = str(raw_key)
        full = key if ":" in key else f"{PROJECT}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[full] = encrypted_placeholder(full, str(value["secure"]))
            secret_keys.append(full)
        elif isinstance(value, str):
            config[full] = value
        elif isinstance(value, bool):
            config[full] = "true" if value else "false"
        else:
            config[full] = json.dumps(value)
    return config, secret_keys


def run_program(
    program: Callable[[], None],
    *,
    stack: str,
    config: dict[str, str],
    secret_keys: list[str] | None = None,
    preview: bool = False,
    cluster: providers.Cluster | None = None,
) -> StackRun:
    """Run `program` under fresh mocks with `config`, as a first preview (`preview=True`) or as
    the update; return the resources and stack outputs.

    `cluster` holds what the program's reads (`get`) find; a read of anything else fails the
    run with `providers.ReadError`, as it fails the preview. None: no cluster to ask, every
    read finds its object (`providers.read`).

    Exceptions from the program propagate after the runtime has settled, so a failure before any
    registration leaves `Mocks.resources` empty.
    """
    mocks = Mocks()
    engine_log = _EngineLog()
    # A loop of its own per run: the runtime awaits on the current loop, and whatever ran before
    # in this thread (asyncio.run, another run) may have closed or unset it.
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_quiet_about_failed_reads)
    asyncio.set_event_loop(loop)
    monitor = _Monitor(mocks, preview=preview, config=config, cluster=cluster)
    try:
        runtime_settings.reset_options(project=PROJECT, stack=stack, preview=preview)
        pulumi.runtime.set_all_config(config, secret_keys or [])
        pulumi.runtime.set_mocks(
            mocks,
            project=PROJECT,
            stack=stack,
            preview=preview,
            logger=engine_log.logger,
            monitor=monitor,
        )
        try:
            _sync_await(run_pulumi_func(program))
        except BaseException as error:
            error.recorded = mocks.resources  # type: ignore[attr-defined]
            raise
        root = runtime_settings.get_root_resource()
        exports = dict(getattr(root, "outputs", None) or {})
        outputs: dict[str, Any] = {}
        secret: set[str] = set()
        for key, value in exports.items():
            output = pulumi.Output.from_input(value)
            outputs[key] = _sync_await(output.future())
            if _sync_await(output.is_secret()):
                secret.add(key)
        wire_outputs = _wire(_sync_await(rpc.serialize_properties(exports, {})))
        root_urn = _sync_await(root.urn.future()) if root is not None else ""
    finally:
        # The registrations ran on the loop's executor threads: wait for them before closing
        # the loops they used.
        loop.run_until_complete(loop.shutdown_default_executor())
        monitor.close_loops()
        asyncio.set_event_loop(None)
        loop.close()
    resources = [
        dataclasses.replace(r, outputs=mocks.component_outputs[r.urn])
        if not r.custom and r.urn in mocks.component_outputs
        else r
        for r in mocks.resources
    ]
    return StackRun(
        resources=resources,
        passwords={
            r.name: unwrap(r.outputs["result"])
            for r in resources
            if r.type == providers.RANDOM_PASSWORD and unwrap(r.outputs.get("result")) != UNKNOWN
        },
        outputs=outputs,
        secret_outputs=frozenset(secret),
        warnings=tuple(engine_log.warnings),
        preview=preview,
        root_urn=root_urn or "",
        wire_outputs=wire_outputs,
        config=dict(config),
    )


def _quiet_about_failed_reads(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # A failed read rejects the outputs of every resource that waits on it, and nothing awaits
    # those once the run has failed: asyncio would print each as "never retrieved" when it is
    # collected. The run raises the error itself.
    if isinstance(context.get("exception"), providers.ReadError) and "never retrieved" in str(
        context.get("message")
    ):
        return
    loop.default_exception_handler(context)


class _EngineLog(logging.Handler):
    """The mock engine's log (`pulumi.log.*` lands there): warnings are kept for the report
    instead of going to stderr."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.warnings: list[str] = []
        # A logger of its own, outside logging's tree, so that nothing propagates to the root.
        self.logger = logging.Logger("pulumi-engine", level=logging.DEBUG)
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.WARNING:
            self.warnings.append(record.getMessage())
        elif record.levelno >= logging.ERROR:
            print(f"error: {record.getMessage()}", file=sys.stderr)


def run_stack(
    stack: str,
    overrides: dict[str, str] | None = None,
    *,
    preview: bool = False,
    cluster: providers.Cluster | None = None,
) -> StackRun:
    """Load and validate the stack's settings and run the whole program, as `pulumi up` would
    (or as its first preview, with `preview=True`), its reads answered from `cluster`."""
    from infra.program import run
    from stacks import load_settings

    config, secret_keys = stack_config(stack)
    config.update(overrides or {})
    return run_program(
        lambda: run(load_settings()),
        stack=stack,
        config=config,
        secret_keys=secret_keys,
        preview=preview,
        cluster=cluster,
    )


is_secret = providers.is_secret
unwrap = providers.plain
"""The value with every secret wrapper removed (for reading, never for writing out)."""


Fingerprint = Callable[[Any], str]
"""Maps a secret value to a short keyed digest, so that two renders made with the same key show
whether a secret changed without showing it."""


def masked(fingerprint: Fingerprint | None, value: Any) -> str:
    """REDACTED, or `[secret <digest>]` with a fingerprint."""
    return REDACTED if fingerprint is None else f"[secret {fingerprint(value)}]"


def redact(
    value: Any, passwords: tuple[str, ...] = (), fingerprint: Fingerprint | None = None
) -> Any:
    """The value with secrets replaced by REDACTED: wrapped values keep their shape (keys of a
    map, `NAME=` of an env entry) and any generated password is masked wherever it appears.
    With `fingerprint`, each masked value carries its keyed digest."""
    if is_secret(value):
        return _mask(unwrap(value), fingerprint)
    if isinstance(value, dict):
        return {k: redact(v, passwords, fingerprint) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, passwords, fingerprint) for v in value]
    if isinstance(value, str):
        for password in passwords:
            value = value.replace(password, masked(fingerprint, password))
    return value


def _mask(value: Any, fingerprint: Fingerprint | None) -> Any:
    if isinstance(value, dict):
        return {k: _mask(v, fingerprint) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, fingerprint) for v in value]
    if isinstance(value, str) and "=" in value and value.split("=", 1)[0].isidentifier():
        name, _, rest = value.partition("=")
        return f"{name}={masked(fingerprint, rest)}"
    return masked(fingerprint, value)
