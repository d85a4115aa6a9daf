"""Drives a CrossGuard policy pack exactly as the Pulumi engine does, without the Pulumi CLI.

The pack runs as its own process, started the way the CLI starts a Python pack
(`infra/offline/launch.py`, which a check may use before it imports this module), and prints
its Analyzer gRPC port on stdout:

- `launcher="language-host"` (CLI 3.221 and later, the default): the Python language host runs
  `python3 -u -m pulumi.policy <engine address> <absolute pack dir>` in the pack directory, with
  `python3` (or `PULUMI_PYTHON_CMD`) from PATH and no virtualenv, once it has the stack's
  ConfigureStack (it answers Handshake itself and sets PULUMI_ORGANIZATION/PROJECT/STACK/
  DRY_RUN/CONFIG from it);
- `launcher="shim"` (CLI 3.220 and earlier): the `pulumi-analyzer-policy-python` script runs
  `${PULUMI_PYTHON_CMD:-python3} -u -m pulumi.policy <engine address> .` in the pack directory
  with the same variables set by the engine, and Handshake and ConfigureStack reach the pack.

It is then driven through the `pulumi.runtime.proto` stubs in the engine's order: [Handshake],
ConfigureStack, GetPluginInfo, GetAnalyzerInfo, Configure (a `--policy-pack-config` file
reconciled as the engine does), Remediate then Analyze for each resource, AnalyzeStack over the
whole stack and Cancel on shutdown. A tiny in-process Engine service receives the pack's Log
calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import queue
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc, engine_pb2_grpc, plugin_pb2

from infra.offline.launch import (
    PYTHON_HINT,
    Launcher,
    PackLaunch,
    PolicyPackError,
    StartedPack,
)
from infra.offline.wire import SECRET_SIG, SIG_KEY

EnforcementLevel = Literal["advisory", "mandatory", "remediate", "disabled"]
_LEVELS: Final[Mapping[str, int]] = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "remediate": analyzer_pb2.REMEDIATE,
    "disabled": analyzer_pb2.DISABLED,
}
_LEVEL_NAMES: Final[Mapping[int, str]] = {v: k for k, v in _LEVELS.items()}

UNKNOWN_NOTE: Final = "can't run policy '"
"""How pulumi-policy starts the advisory note it reports instead of a verdict when a policy reads
a value not known during preview (pulumi/pulumi-policy@v1.21.0:sdk/python/lib/pulumi_policy/
policy.py#_PolicyAnalyzerServicer.Analyze and AnalyzeStack, on UnknownValueError)."""

_MAX_MESSAGE: Final = 400 * 1024 * 1024
_CHANNEL_OPTIONS: Final = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
]


IN_FLIGHT: Final = 32
"""Resources outstanding on each pack at once. The engine sends one resource at a time (its
deployment executor handles one event at a time: pulumi/pulumi@v3.259.0:pkg/resource/deploy/
deployment_executor.go#Execute). The calls are independent of each other and the pack's server
answers several at once (four threads: pulumi/pulumi-policy@v1.21.0:sdk/python/lib/
pulumi_policy/policy.py#PolicyPack.__init__), so the check keeps several outstanding: encoding,
transport and the pack's work overlap, and with this many both sides batch their reads and
writes (7 to 9 % less CPU per call on both sides than with 8, BENCHMARKS.md)."""


@dataclass(frozen=True)
class Secret:
    """A property value the engine marks secret (what a Pulumi secret output becomes)."""

    value: Any


@dataclass(frozen=True, kw_only=True)
class Provider:
    """The provider resource that manages a resource, as the engine describes it to analyzers."""

    type: str
    """`pulumi:providers:<package>`."""
    name: str
    """`default_<version>` for the engine's default provider."""
    urn: str
    properties: Mapping[str, Any] = field(default_factory=dict)
    """The provider's inputs: its package config and `version`."""


@dataclass(frozen=True, kw_only=True)
class Options:
    """The resource options the engine sends with each resource (AnalyzerResourceOptions)."""

    protect: bool = False
    ignore_changes: Sequence[str] = ()
    delete_before_replace: bool | None = None
    """None when the program left it unset (`deleteBeforeReplaceDefined` false)."""
    additional_secret_outputs: Sequence[str] = ()
    aliases: Sequence[str] = ()
    """Alias URNs."""
    custom_timeouts: Mapping[str, float] = field(default_factory=dict)
    """Seconds per operation: `create`, `update`, `delete`, `read`."""

    def __post_init__(self) -> None:
        unknown = set(self.custom_timeouts) - {"create", "update", "delete", "read"}
        if unknown:
            raise ValueError(f"custom_timeouts: unknown operations {sorted(unknown)}")


_NO_OPTIONS: Final = Options()
_NO_OPTIONS_MESSAGE: Final = analyzer_pb2.AnalyzerResourceOptions(
    customTimeouts=analyzer_pb2.AnalyzerResourceOptions.CustomTimeouts()
)
"""How the engine sends the options of a resource that sets none (a manifest's)."""


@dataclass(frozen=True, kw_only=True)
class Resource:
    """A resource as the engine sends it to analyzers."""

    type: str
    """The type token, e.g. `kubernetes:apps/v1:Deployment`."""
    name: str
    """The resource's logical name."""
    properties: Mapping[str, Any] = field(default_factory=dict)
    """Inputs after the provider's Check, in the engine's camelCase wire format; `wire.UNKNOWN`
    and `Secret` values (or wire-format secret markers) allowed. Remediate and Analyze get them."""
    outputs: Mapping[str, Any] | None = None
    """What the provider returned for the resource (its state); AnalyzeStack gets them. None
    sends `properties` (a manifest is its own state)."""
    urn: str = ""
    """Defaults to a URN built from the pack process's project and stack."""
    parent: str = ""
    """The parent's URN."""
    provider: Provider | None = None
    """The provider managing the resource; None sends none (component resources)."""
    options: Options = field(default_factory=Options)
    dependencies: Sequence[str] = ()
    """URNs this resource depends on (AnalyzeStack only)."""
    property_dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Per property, the URNs it depends on (AnalyzeStack only)."""


@dataclass(frozen=True)
class Diagnostic:
    """One policy finding, as the engine would print it."""

    policy_name: str
    enforcement_level: str
    message: str
    urn: str
    description: str
    policy_pack_name: str
    policy_pack_version: str

    @property
    def unknown_during_preview(self) -> bool:
        """The SDK's note for a policy that read a value not known during preview: advisory,
        never a verdict (the engine prints it like any advisory finding)."""
        return self.enforcement_level == "advisory" and self.message.startswith(UNKNOWN_NOTE)


@dataclass(frozen=True)
class PolicyInfo:
    """A policy of the pack and its defaults."""

    name: str
    description: str
    enforcement_level: str
    kind: Literal["resource", "stack", "unknown"]
    config_schema: Mapping[str, Any] | None
    """JSON-schema `properties` of the policy's config, if it takes config."""
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnalyzerInfo:
    """What GetAnalyzerInfo reports about the pack."""

    name: str
    version: str
    supports_config: bool
    policies: tuple[PolicyInfo, ...]

    def policy(self, name: str) -> PolicyInfo:
        for policy in self.policies:
            if policy.name == name:
                return policy
        raise KeyError(name)


@dataclass(frozen=True)
class PolicyConfig:
    """The configuration the engine sends for one policy after reconciliation."""

    enforcement_level: str
    properties: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class LogRecord:
    """A Log call the pack made to the engine."""

    severity: str
    message: str
    urn: str


# --- --policy-pack-config files --------------------------------------------------------------


@dataclass(frozen=True)
class PackConfig:
    """A parsed `--policy-pack-config` document."""

    policies: Mapping[str, PolicyConfig]
    """Per policy name (or "all"), what the file sets."""
    environments: tuple[str, ...] = ()
    """Pulumi ESC environments the file names (resolved by Pulumi Cloud backends only)."""


def parse_pack_config(raw: Mapping[str, Any] | None) -> PackConfig:
    """Parses a `--policy-pack-config` document the way the CLI does
    (pulumi/pulumi@v3.259.0:pkg/resource/analyzer/config.go#parsePolicyPackConfig): an
    `environments` array of strings (since CLI 3.231) is taken out first; every other key is a
    policy name or "all", its value an enforcement level or an object with an optional
    `enforcementLevel` and config properties. Entries with neither are dropped."""
    if raw is None:
        return PackConfig({})
    if not isinstance(raw, Mapping):
        raise ValueError(f"must be a JSON object, not {_json_type(raw)}")
    entries = dict(raw)
    environments: tuple[str, ...] = ()
    if "environments" in entries:
        given = entries.pop("environments")
        if not isinstance(given, list):
            raise ValueError(f'"environments" must be an array of strings, got {_json_type(given)}')
        for index, value in enumerate(given):
            if not isinstance(value, str):
                raise ValueError(
                    f'"environments[{index}]" must be a string, got {_json_type(value)}'
                )
        environments = tuple(given)
    result: dict[str, PolicyConfig] = {}
    for name, value in entries.items():
        level = ""
        properties: dict[str, Any] | None = None
        if isinstance(value, str):
            level = value
        elif isinstance(value, Mapping):
            properties = {k: v for k, v in value.items() if k != "enforcementLevel"} or None
            level = value.get("enforcementLevel", "")
            if not isinstance(level, str):
                raise ValueError(
                    f"parsing enforcement level for {name!r}: {level!r} is not a valid "
                    "enforcement level; must be a string"
                )
        else:
            raise ValueError(
                f"parsing {name!r}: {value!r} is not a valid value; must be a string or object"
            )
        if level and level not in _LEVELS:
            raise ValueError(
                f"parsing enforcement level for {name!r}: {level!r} is not a valid enforcement "
                f"level (one of {', '.join(_LEVELS)})"
            )
        if level or properties:
            result[name] = PolicyConfig(level, properties)
    return PackConfig(result, environments)


def _json_type(value: Any) -> str:
    return {list: "an array", dict: "an object", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )


def load_pack_config(path: Path) -> dict[str, Any]:
    """Reads a `--policy-pack-config` JSON file (empty file -> no config)."""
    text = path.read_text()
    return json.loads(text) if text.strip() else {}


def reconcile_config(info: AnalyzerInfo, raw: Mapping[str, Any] | None) -> dict[str, PolicyConfig]:
    """The config the engine sends to Configure: defaults, then "all", then per policy.

    Mirrors pulumi/pulumi@v3.259.0:pkg/resource/analyzer/config.go#ReconcilePolicyPackConfig:
    schema defaults and default levels first, "all" sets every level, named entries override,
    every entry of the file is sent (so "all" is too); the result is validated against each
    policy's config schema (an invalid config stops the engine, so it raises ValueError here).

    Stricter than the CLI on purpose: a key that names no policy of the pack is refused,
    naming the closest policy. The CLI sends it along and the pack ignores it, so a typo would
    silently leave the intended policy at its default level.
    """
    given = parse_pack_config(raw).policies
    names = [policy.name for policy in info.policies]
    for name in given:
        if name != "all" and name not in names:
            closest = difflib.get_close_matches(name, names, n=1, cutoff=0.0)
            hint = f'; did you mean "{closest[0]}"?' if closest else ""
            raise ValueError(f'unknown policy "{name}": pack {info.name} has no such policy{hint}')
    result: dict[str, PolicyConfig] = {}
    for policy in info.policies:
        defaults = {
            key: schema["default"]
            for key, schema in (policy.config_schema or {}).items()
            if isinstance(schema, Mapping) and "default" in schema
        }
        result[policy.name] = PolicyConfig(policy.enforcement_level, defaults or None)
    everything = given.get("all")
    if everything and everything.enforcement_level:
        result = {
            k: PolicyConfig(everything.enforcement_level, v.properties) for k, v in result.items()
        }
    for name, config in given.items():
        current = result.get(name, PolicyConfig(""))
        properties = dict(current.properties or {})
        properties.update(config.properties or {})
        result[name] = PolicyConfig(
            config.enforcement_level or current.enforcement_level, properties or None
        )
    for name, config in result.items():
        # analyzer_plugin.go#(*analyzer).Configure refuses an entry without a valid level.
        if config.enforcement_level not in _LEVELS:
            raise ValueError(
                f"{name}: invalid enforcement level {config.enforcement_level!r} (an entry with "
                "properties only needs an enforcementLevel here)"
            )
    # Imported here, not with this module: a tenth of a second, which a check spends while its
    # pack boots (`check.pack.starting_policy_pack`).
    import jsonschema

    errors = []
    for policy in info.policies:
        if policy.config_schema is None:
            continue
        schema: dict[str, Any] = {"type": "object", "properties": dict(policy.config_schema)}
        if policy.required:
            schema["required"] = list(policy.required)
        validator = jsonschema.Draft7Validator(schema)
        for error in validator.iter_errors(dict(result[policy.name].properties or {})):
            where = ".".join([policy.name, *map(str, error.absolute_path)])
            errors.append(f"{where}: {error.message}")
    if errors:
        raise ValueError("invalid policy pack config: " + "; ".join(errors))
    return result


# --- wire encoding ---------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, Secret):
        return {SIG_KEY: SECRET_SIG, "value": _encode(value.value)}
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def to_struct(properties: Mapping[str, Any]) -> struct_pb2.Struct:
    """Resource properties as the google.protobuf.Struct the engine sends (numbers as doubles)."""
    struct = struct_pb2.Struct()
    struct.update(_encode(properties))
    return struct


def _internal_keys_skipped(properties: Mapping[str, Any]) -> Mapping[str, Any]:
    # MarshalProperties(SkipInternalKeys: true) for Analyze and AnalyzeStack
    # (pulumi/pulumi@v3.259.0:pkg/resource/plugin/analyzer_plugin.go#(*analyzer).Analyze).
    if not any(str(key).startswith("__") for key in properties):
        return properties
    return {k: v for k, v in properties.items() if not str(k).startswith("__")}


# --- the engine side -------------------------------------------------------------------------


class _EngineServicer(engine_pb2_grpc.EngineServicer):
    """The engine's log sink, as much of the Engine service as a policy pack uses."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        self._lock = threading.Lock()

    def Log(self, request: Any, context: Any) -> empty_pb2.Empty:
        severity = {0: "debug", 1: "info", 2: "warning", 3: "error"}.get(request.severity, "info")
        with self._lock:
            self.records.append(LogRecord(severity, request.message, request.urn))
        return empty_pb2.Empty()


class PolicyPackProcess:
    """A running policy pack; use as a context manager so the process is always stopped."""

    def __init__(
        self,
        pack_dir: Path,
        *,
        project: str = "safeguard",
        stack: str = "dev",
        organization: str = "organization",
        dry_run: bool = True,
        config: Mapping[str, str] | None = None,
        config_secret_keys: Sequence[str] = (),
        tags: Mapping[str, str] | None = None,
        launcher: Launcher = "language-host",
        startup_timeout: float = 60.0,
        call_timeout: float = 60.0,
        python: str | None = None,
    ) -> None:
        """`dry_run` is the engine's: True in `pulumi preview` and the preview of `pulumi up`,
        False in the update. `config` is the stack's config (`<namespace>:<key>` -> value), as
        ConfigureStack carries it. `launcher` picks how the CLI starts the pack (see the
        module docstring); "script" runs `python -u <pack_dir>/__main__.py` from the current
        directory instead. `python` overrides the interpreter the launcher would pick."""
        self.launch = PackLaunch(
            pack_dir=pack_dir,
            project=project,
            stack=stack,
            organization=organization,
            dry_run=dry_run,
            config=config or {},
            launcher=launcher,
            python=python,
        )
        """How the pack is started, for which stack: `start` checks a pack started beforehand
        against it."""
        self._config_secret_keys = list(config_secret_keys)
        self._tags = dict(tags or {})
        self._startup_timeout = startup_timeout
        self._call_timeout = call_timeout
        self._engine = _EngineServicer()
        self._engine_server: grpc.Server | None = None
        self._started: StartedPack | None = None
        self._address = ""
        self._channel: grpc.Channel | None = None
        self._stub: analyzer_pb2_grpc.AnalyzerStub | None = None
        self._info: AnalyzerInfo | None = None
        self._project_version = ""
        self.command: list[str] = []
        """The command line the pack was started with."""
        self.plugin_version = ""
        """What GetPluginInfo answered (the policy SDK's version)."""
        self.calls: list[str] = []
        """Every RPC sent to the pack, in order."""
        self._calls_lock = threading.Lock()
        self._encoded_providers: dict[int, tuple[Provider, Any]] = {}

    @property
    def pack_dir(self) -> Path:
        return self.launch.pack_dir

    @property
    def project(self) -> str:
        return self.launch.project

    @property
    def stack(self) -> str:
        return self.launch.stack

    # -- lifecycle --

    def __enter__(self) -> PolicyPackProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, started: StartedPack | None = None) -> None:
        """Starts the pack as the CLI does, or adopts `started` (from `self.launch.start()`,
        made before the caller imported what it needs meanwhile), and makes the calls the
        engine makes before any resource: [Handshake], ConfigureStack and GetPluginInfo."""
        if self._started is not None and self._started.process.poll() is None:
            raise PolicyPackError("the policy pack is already started")
        if started is not None and started.launch != self.launch:
            raise ValueError(f"{started.launch} was started, not {self.launch}")
        try:
            self._started = started or self.launch.start()
            self.command = self._started.command
            # analyzer_plugin.go#NewPolicyAnalyzer keeps PulumiPolicy.yaml's version; it
            # replaces the pack's own in GetAnalyzerInfo and in every diagnostic.
            self._project_version = str(self._started.project.get("version") or "")
            self._start_engine(self._started)
            port = self._read_port()
            # The engine's limit (400 MiB) rather than gRPC's 4 MiB: a large stack's
            # AnalyzeStack request, or the diagnostics of a large batch, exceed the default.
            self._address = f"127.0.0.1:{port}"
            self._channel = grpc.insecure_channel(self._address, options=_CHANNEL_OPTIONS)
            try:
                grpc.channel_ready_future(self._channel).result(timeout=self._startup_timeout)
            except grpc.FutureTimeoutError:
                raise PolicyPackError(self._failure(f"did not accept gRPC on {port}")) from None
            self._stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)
            self._first_calls(self._started.engine_address)
        except BaseException:
            self.stop()
            raise

    def _start_engine(self, started: StartedPack) -> None:
        """The engine's service on the address the pack was given (see `launch`)."""
        # so_reuseport is gRPC's default on Linux; said here because the reservation needs it.
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2), options=[("grpc.so_reuseport", 1)]
        )
        engine_pb2_grpc.add_EngineServicer_to_server(self._engine, server)
        try:
            server.add_insecure_port(started.engine_address)
        except RuntimeError as error:
            raise PolicyPackError(
                f"cannot serve the engine on {started.engine_address}: {error}"
            ) from error
        server.start()
        self._engine_server = server
        started.release_engine_port()

    def _first_calls(self, engine_address: str) -> None:
        if self.launch.launcher == "shim":
            # Since CLI 3.221 the language host's PolicyProxy answers Handshake itself
            # (pulumi/pulumi@v3.259.0:sdk/policy_proxy.go#Handshake); before, it reached the pack.
            directory = str(self.pack_dir)
            self._tolerating_unimplemented(
                "Handshake",
                analyzer_pb2.AnalyzerHandshakeRequest(
                    engine_address=engine_address,
                    root_directory=directory,
                    program_directory=directory,
                ),
            )
        self._tolerating_unimplemented(
            "ConfigureStack",
            analyzer_pb2.AnalyzerStackConfigureRequest(
                stack=self.launch.stack,
                project=self.launch.project,
                organization=self.launch.organization,
                dry_run=self.launch.dry_run,
                config=self.launch.config,
                config_secret_keys=self._config_secret_keys,
                tags=self._tags,
            ),
        )
        # pulumi/pulumi@v3.259.0:pkg/host/host.go#(*defaultHost).PolicyAnalyzer
        info: plugin_pb2.PluginInfo = self._call("GetPluginInfo", empty_pb2.Empty())
        self.plugin_version = info.version

    def _read_port(self) -> int:
        try:
            assert self._started is not None
            line = self._started.stdout.get(timeout=self._startup_timeout)
        except queue.Empty:
            raise PolicyPackError(self._failure("did not print its port in time")) from None
        if line is None:
            raise PolicyPackError(self._failure("exited before serving", exiting=True))
        try:
            return int(line.strip())
        except ValueError:
            raise PolicyPackError(
                self._failure(f"printed {line.strip()!r} instead of a port")
            ) from None

    @property
    def stderr(self) -> str:
        """Everything the pack wrote to stderr so far."""
        return self._started.stderr if self._started is not None else ""

    @property
    def logs(self) -> list[LogRecord]:
        """Log calls the pack made to the engine."""
        return list(self._engine.records)

    def _failure(self, what: str, *, exiting: bool = False) -> str:
        started = self._started
        code = None
        stderr = ""
        if started is not None:
            if exiting:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    started.process.wait(timeout=5)
            stderr = started.stderr_when_gone()
            code = started.process.poll()
        status = f" (exit code {code})" if code is not None else ""
        stderr = stderr.strip() or "(nothing on stderr)"
        hint = f"\n{PYTHON_HINT}" if "ModuleNotFoundError" in stderr else ""
        python = f" with {self.command[0]}" if self.command else ""
        return f"policy pack {self.pack_dir}{python} {what}{status}; its stderr:\n{stderr}{hint}"

    def stop(self) -> None:
        """Sends Cancel (as the engine does on shutdown), then stops the pack process and the
        engine service; safe to call more than once."""
        started = self._started
        if self._stub is not None and started is not None and started.process.poll() is None:
            # pkg/host/host.go#SignalCancellation; UNIMPLEMENTED and a pack already gone are fine.
            with contextlib.suppress(grpc.RpcError):
                self._record("Cancel")
                self._stub.Cancel(empty_pb2.Empty(), timeout=5)
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        self._stub = None
        if started is not None:
            started.stop()
        if self._engine_server is not None:
            self._engine_server.stop(grace=None)
            self._engine_server = None

    # -- calls --

    def _record(self, method: str) -> None:
        with self._calls_lock:
            self.calls.append(method)

    def _call(self, method: str, request: Any) -> Any:
        if self._stub is None:
            raise PolicyPackError("the policy pack is not running; use it as a context manager")
        self._record(method)
        try:
            return getattr(self._stub, method)(request, timeout=self._call_timeout)
        except grpc.RpcError as error:
            detail = f"{method} failed: {error.code().name}: {error.details()}"  # type: ignore[attr-defined]
            raise PolicyPackError(self._failure(detail)) from error

    def _tolerating_unimplemented(self, method: str, request: Any) -> None:
        try:
            self._call(method, request)
        except PolicyPackError as error:
            cause = error.__cause__
            if not (
                isinstance(cause, grpc.RpcError) and cause.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
            ):
                raise

    def info(self) -> AnalyzerInfo:
        """GetAnalyzerInfo: the pack's name, version and policies; asked once and cached, as the
        engine does. The version is PulumiPolicy.yaml's when it has one."""
        if self._info is not None:
            return self._info
        response = self._call("GetAnalyzerInfo", empty_pb2.Empty())
        kinds = {
            analyzer_pb2.POLICY_TYPE_RESOURCE: "resource",
            analyzer_pb2.POLICY_TYPE_STACK: "stack",
        }
        self._info = AnalyzerInfo(
            name=response.name,
            version=self._project_version or response.version,
            supports_config=response.supportsConfig,
            policies=tuple(
                PolicyInfo(
                    name=p.name,
                    description=p.description,
                    enforcement_level=_LEVEL_NAMES.get(p.enforcementLevel, "advisory"),
                    kind=kinds.get(p.policy_type, "unknown"),  # type: ignore[arg-type]
                    config_schema=(
                        json_format.MessageToDict(p.configSchema.properties)
                        if p.HasField("configSchema")
                        else None
                    ),
                    required=tuple(p.configSchema.required),
                )
                for p in response.policies
            ),
        )
        return self._info

    def configure(self, config: Mapping[str, Any] | Path | None = None) -> dict[str, PolicyConfig]:
        """Configure with a `--policy-pack-config` document (dict or JSON file); returns the
        reconciled per-policy config that was sent. None sends the pack's defaults."""
        raw = load_pack_config(config) if isinstance(config, Path) else config
        info = self.info()
        reconciled = reconcile_config(info, raw)
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, policy_config in reconciled.items():
            entry = analyzer_pb2.PolicyConfig(
                enforcementLevel=_LEVELS[policy_config.enforcement_level]
            )
            # Always a Struct, empty without properties (structpb.NewStruct in Configure).
            entry.properties.SetInParent()
            if policy_config.properties:
                entry.properties.update(_encode(policy_config.properties))
            request.policyConfig[name].CopyFrom(entry)
        self._call("Configure", request)
        return reconciled

    def _urn(self, resource: Resource) -> str:
        return (
            resource.urn
            or f"urn:pulumi:{self.stack}::{self.project}::{resource.type}::{resource.name}"
        )

    def _diagnostics(self, response: Any) -> list[Diagnostic]:
        return [
            Diagnostic(
                policy_name=d.policyName,
                enforcement_level=_LEVEL_NAMES.get(d.enforcementLevel, "advisory"),
                message=d.message,
                urn=d.urn,
                description=d.description,
                policy_pack_name=d.policyPackName,
                policy_pack_version=self._project_version or d.policyPackVersion,
            )
            for d in response.diagnostics
        ]

    def _remediation_diagnostics(self, response: Any, urn: str) -> list[Diagnostic]:
        # A remediation's diagnostic is shown as an advisory finding on the resource
        # (pulumi/pulumi@v3.259.0:pkg/resource/deploy/step_generator.go, "First pass").
        return [
            Diagnostic(
                policy_name=r.policyName,
                enforcement_level="advisory",
                message=r.diagnostic,
                urn=urn,
                description=r.description,
                policy_pack_name=r.policyPackName,
                policy_pack_version=self._project_version or r.policyPackVersion,
            )
            for r in response.remediations
            if r.diagnostic
        ]

    def _provider(self, resource: Resource) -> analyzer_pb2.AnalyzerProviderResource | None:
        provider = resource.provider
        if provider is None:
            return None
        # Every resource of a package shares its provider: encoded once (a message passed to
        # a request is copied into it).
        cached = self._encoded_providers.get(id(provider))
        if cached is not None and cached[0] is provider:
            return cached[1]
        message = analyzer_pb2.AnalyzerProviderResource(
            type=provider.type,
            name=provider.name,
            urn=provider.urn,
            properties=to_struct(_internal_keys_skipped(provider.properties)),
        )
        self._encoded_providers[id(provider)] = (provider, message)
        return message

    def _options(self, resource: Resource) -> analyzer_pb2.AnalyzerResourceOptions:
        # analyzer_plugin.go#marshalResourceOptions
        options = resource.options
        if options == _NO_OPTIONS and not resource.parent:
            return _NO_OPTIONS_MESSAGE
        return analyzer_pb2.AnalyzerResourceOptions(
            protect=options.protect,
            ignoreChanges=list(options.ignore_changes),
            deleteBeforeReplace=bool(options.delete_before_replace),
            deleteBeforeReplaceDefined=options.delete_before_replace is not None,
            additionalSecretOutputs=list(options.additional_secret_outputs),
            aliases=list(options.aliases),
            customTimeouts=analyzer_pb2.AnalyzerResourceOptions.CustomTimeouts(
                **options.custom_timeouts
            ),
            parent=resource.parent,
        )

    def _analyze_request(self, resource: Resource) -> analyzer_pb2.AnalyzeRequest:
        return analyzer_pb2.AnalyzeRequest(
            type=resource.type,
            name=resource.name,
            urn=self._urn(resource),
            properties=to_struct(_internal_keys_skipped(resource.properties)),
            options=self._options(resource),
            provider=self._provider(resource),
        )

    @staticmethod
    def _remediated(
        request: analyzer_pb2.AnalyzeRequest, response: Any
    ) -> analyzer_pb2.AnalyzeRequest:
        """The request Analyze gets: the properties of the last remediation that changed them."""
        changed = [
            r for r in response.remediations if not r.diagnostic and r.HasField("properties")
        ]
        if not changed:
            return request
        remediated = analyzer_pb2.AnalyzeRequest()
        remediated.CopyFrom(request)
        remediated.properties.CopyFrom(changed[-1].properties)
        return remediated

    def remediate(self, resource: Resource) -> analyzer_pb2.RemediateResponse:
        """Remediate alone, the pack's whole answer (remediations and not-applicable policies)."""
        return self._call("Remediate", self._analyze_request(resource))

    def analyze(self, resource: Resource) -> list[Diagnostic]:
        """Remediate, then Analyze: the diagnostics of the resource policies for one resource."""
        request = self._analyze_request(resource)
        remediation = self._call("Remediate", request)
        found = self._remediation_diagnostics(remediation, self._urn(resource))
        analyzed = self._call("Analyze", self._remediated(request, remediation))
        return found + self._diagnostics(analyzed)

    def analyze_all(
        self, resources: Iterable[Resource], *, in_flight: int = IN_FLIGHT, remediate: bool = True
    ) -> tuple[list[tuple[Resource, list[Diagnostic]]], list[Diagnostic]]:
        """What the engine does over a whole update: Remediate and then Analyze for every
        resource, then AnalyzeStack over all of them (with their outputs): `analyze_spread`
        over this pack alone."""
        return analyze_spread([self], resources, in_flight=in_flight, remediate=remediate)

    async def _analyzed(
        self,
        stub: Any,
        resource: Resource,
        request: analyzer_pb2.AnalyzeRequest,
        remediate: bool,
    ) -> tuple[Resource, list[Diagnostic]]:
        """Remediate (if asked) and then Analyze for one resource, on `stub` (asyncio's)."""
        found: list[Diagnostic] = []
        if remediate:
            self._record("Remediate")
            call = stub.Remediate(request, timeout=self._call_timeout)
            response = await self._settled("Remediate", call)
            found = self._remediation_diagnostics(response, request.urn)
            request = self._remediated(request, response)
        self._record("Analyze")
        call = stub.Analyze(request, timeout=self._call_timeout)
        return resource, found + self._diagnostics(await self._settled("Analyze", call))

    async def _settled(self, method: str, call: Any) -> Any:
        try:
            return await call
        except grpc.RpcError as error:
            detail = f"{method} failed: {error.code().name}: {error.details()}"  # type: ignore[attr-defined]
            raise PolicyPackError(self._failure(detail)) from error

    def analyze_stack(self, resources: Iterable[Resource]) -> list[Diagnostic]:
        """AnalyzeStack: the diagnostics of the stack policies over all resources."""
        request = analyzer_pb2.AnalyzeStackRequest(
            resources=[self._stack_resource(r, None) for r in resources]
        )
        return self._diagnostics(self._call("AnalyzeStack", request))

    def _stack_resource(
        self, r: Resource, inputs: struct_pb2.Struct | None
    ) -> analyzer_pb2.AnalyzerResource:
        # AnalyzeStack gets each resource's outputs, not its inputs
        # (pulumi/pulumi@v3.259.0:pkg/resource/deploy/step_generator.go#AnalyzeResources);
        # empty property dependencies are dropped (analyzer_plugin.go#AnalyzeStack).
        if r.outputs is not None:
            properties = to_struct(_internal_keys_skipped(r.outputs))
        else:
            properties = inputs or to_struct(_internal_keys_skipped(r.properties))
        return analyzer_pb2.AnalyzerResource(
            type=r.type,
            name=r.name,
            urn=self._urn(r),
            properties=properties,
            options=self._options(r),
            provider=self._provider(r),
            parent=r.parent,
            dependencies=list(r.dependencies),
            propertyDependencies={
                key: analyzer_pb2.AnalyzerPropertyDependencies(urns=list(urns))
                for key, urns in r.property_dependencies.items()
                if urns
            },
        )


def analyze_spread(
    packs: Sequence[PolicyPackProcess],
    resources: Iterable[Resource],
    *,
    stack_pack: PolicyPackProcess | None = None,
    in_flight: int = IN_FLIGHT,
    remediate: bool = True,
) -> tuple[list[tuple[Resource, list[Diagnostic]]], list[Diagnostic]]:
    """Remediate and then Analyze for every resource, on whichever of `packs` has room first
    (the engine's Analyze calls are independent of each other), then AnalyzeStack over all of
    them (with their outputs). Returns ([(resource, its diagnostics)] in the order of
    `resources`, stack diagnostics). `remediate=False` leaves out the Remediate calls, for when
    their answer is known to be empty.

    `resources` is read by a thread of its own, ahead of the calls, and each resource encoded
    as soon as it is read: it may be a generator still parsing input. AnalyzeStack goes to
    `stack_pack` as soon as the last resource is read, while `packs` still answer the Analyze
    calls (on a large stack it is the longest call); without a `stack_pack`, to the first pack
    once every call is answered. Either way each pack gets its calls in the engine's order.
    One event loop drives every pack through gRPC's asyncio client, each on a channel of its
    own: a call costs the caller a third less CPU than a future of the blocking client. The
    first call that fails, or the first error of `resources`, ends the run.
    """
    if not packs:
        raise ValueError("analyze_spread needs at least one pack")
    every = [*packs, *([stack_pack] if stack_pack is not None else [])]
    if len({(pack.project, pack.stack) for pack in every}) > 1:
        raise ValueError("the packs of one run must serve the same stack")
    for pack in every:
        if pack._stub is None:
            raise PolicyPackError("the policy pack is not running; use it as a context manager")
    return asyncio.run(_Spread(packs, stack_pack, in_flight, remediate).run(resources))


_Work = tuple[int, Resource, analyzer_pb2.AnalyzeRequest]
"""A resource read: its position in the input, itself, and its Analyze request."""


class _Spread:
    """One `analyze_spread` run: the reading thread's hand-over and the calls."""

    def __init__(
        self,
        packs: Sequence[PolicyPackProcess],
        stack_pack: PolicyPackProcess | None,
        in_flight: int,
        remediate: bool,
    ) -> None:
        self._packs = packs
        self._stack_pack = stack_pack
        self._in_flight = in_flight
        self._remediate = remediate
        self._results: dict[int, tuple[Resource, list[Diagnostic]]] = {}
        self._stop = threading.Event()

    async def run(
        self, resources: Iterable[Resource]
    ) -> tuple[list[tuple[Resource, list[Diagnostic]]], list[Diagnostic]]:
        loop = asyncio.get_running_loop()
        work: asyncio.Queue[_Work | None] = asyncio.Queue()
        read: asyncio.Future[analyzer_pb2.AnalyzeStackRequest] = loop.create_future()
        reader = threading.Thread(
            target=self._read, args=(resources, loop, work, read), name="analyze-read"
        )
        tasks: list[asyncio.Future[Any]] = []
        async with contextlib.AsyncExitStack() as channels:
            packs = [*self._packs, *([self._stack_pack] if self._stack_pack is not None else [])]
            stubs = [
                analyzer_pb2_grpc.AnalyzerStub(
                    await channels.enter_async_context(
                        grpc.aio.insecure_channel(pack._address, options=_CHANNEL_OPTIONS)
                    )
                )
                for pack in packs
            ]
            try:
                tasks += [
                    asyncio.ensure_future(self._analyzing(pack, stub, work))
                    for pack, stub in zip(self._packs, stubs[: len(self._packs)], strict=True)
                    for _ in range(self._in_flight)
                ]
                reader.start()
                stack = await _first_failure_or(read, tasks)
                for _ in tasks:
                    work.put_nowait(None)
                if self._stack_pack is not None:
                    stacked = asyncio.ensure_future(
                        _analyzed_stack(self._stack_pack, stubs[-1], stack)
                    )
                    tasks.append(stacked)
                    await _every(tasks)
                    stack_diagnostics = stacked.result()
                else:
                    await _every(tasks)
                    stack_diagnostics = await _analyzed_stack(self._packs[0], stubs[0], stack)
            finally:
                self._stop.set()
                # What the reader hands over from now on is dropped (`_settle`).
                read.cancel()
                for task in tasks:
                    task.cancel()
                # Every task's outcome is taken, so none is reported as never retrieved.
                await asyncio.gather(*tasks, return_exceptions=True)
                if reader.ident is not None:
                    reader.join()
        return [self._results[index] for index in range(len(self._results))], stack_diagnostics

    def _read(
        self,
        resources: Iterable[Resource],
        loop: asyncio.AbstractEventLoop,
        work: asyncio.Queue[_Work | None],
        read: asyncio.Future[analyzer_pb2.AnalyzeStackRequest],
    ) -> None:
        # Every pack serves the same stack: the first encodes for all.
        encoder = self._packs[0]
        stack = analyzer_pb2.AnalyzeStackRequest()
        try:
            for position, resource in enumerate(resources):
                if self._stop.is_set():
                    return
                request = encoder._analyze_request(resource)
                stack.resources.append(encoder._stack_resource(resource, request.properties))
                loop.call_soon_threadsafe(work.put_nowait, (position, resource, request))
        except BaseException as error:  # handed to the event loop, which raises it
            loop.call_soon_threadsafe(_settle, read, None, error)
        else:
            loop.call_soon_threadsafe(_settle, read, stack, None)

    async def _analyzing(
        self, pack: PolicyPackProcess, stub: Any, work: asyncio.Queue[_Work | None]
    ) -> None:
        while (item := await work.get()) is not None:
            position, resource, request = item
            self._results[position] = await pack._analyzed(stub, resource, request, self._remediate)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


async def _first_failure_or(
    future: asyncio.Future[Any], tasks: Sequence[asyncio.Future[Any]]
) -> Any:
    """`future`'s result, unless one of `tasks` fails first (its error is raised then)."""
    waiting = [future, *tasks]
    while True:
        done, pending = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not future and (error := task.exception()) is not None:
                raise error
        if future in done:
            return future.result()
        waiting = list(pending)


async def _every(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Waits for every one of `tasks`; the first to fail ends the wait with its error."""
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        if (error := task.exception()) is not None:
            raise error


async def _analyzed_stack(
    pack: PolicyPackProcess, stub: Any, request: analyzer_pb2.AnalyzeStackRequest
) -> list[Diagnostic]:
    pack._record("AnalyzeStack")
    call = stub.AnalyzeStack(request, timeout=pack._call_timeout)
    return pack._diagnostics(await pack._settled("AnalyzeStack", call))
