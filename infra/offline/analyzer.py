"""Drives a CrossGuard policy pack exactly as the Pulumi engine does, without the Pulumi CLI.

The pack runs as its own process (`python -u -m pulumi.policy <engine-address> .` in the pack
directory, the command behind `pulumi-analyzer-policy-python`), prints its Analyzer gRPC port
on stdout and is then driven through the `pulumi.runtime.proto` stubs: GetAnalyzerInfo,
Configure (with a `--policy-pack-config` file reconciled as the engine does), Analyze per
resource and AnalyzeStack for the whole stack (one call at a time, or a whole update at once with
`analyze_all`, pipelined over one channel). A tiny in-process Engine service receives the
pack's Log calls.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import grpc
import jsonschema
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc, engine_pb2_grpc

from infra.offline.wire import SECRET_SIG, SIG_KEY

EnforcementLevel = Literal["advisory", "mandatory", "remediate", "disabled"]
_LEVELS: Final[Mapping[str, int]] = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "remediate": analyzer_pb2.REMEDIATE,
    "disabled": analyzer_pb2.DISABLED,
}
_LEVEL_NAMES: Final[Mapping[int, str]] = {v: k for k, v in _LEVELS.items()}


_MAX_MESSAGE: Final = 400 * 1024 * 1024
_CHANNEL_OPTIONS: Final = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
]


class PolicyPackError(RuntimeError):
    """The pack failed to start, or a call to it failed; the message carries its stderr."""


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


@dataclass(frozen=True, kw_only=True)
class Resource:
    """A resource as the engine sends it to analyzers."""

    type: str
    """The type token, e.g. `kubernetes:apps/v1:Deployment`."""
    name: str
    """The resource's logical name."""
    properties: Mapping[str, Any] = field(default_factory=dict)
    """Inputs in the engine's camelCase wire format; `wire.UNKNOWN` and `Secret` values allowed."""
    urn: str = ""
    """Defaults to a URN built from the pack process's project and stack."""
    parent: str = ""
    """The parent's URN."""
    provider: Provider | None = None
    """The provider managing the resource; None sends none (component resources)."""
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


def parse_pack_config(raw: Mapping[str, Any] | None) -> dict[str, PolicyConfig]:
    """Parses a `--policy-pack-config` document the way the engine does.

    Each key is a policy name or "all"; each value an enforcement level string or an object with
    an optional `enforcementLevel` and config properties. Empty entries are dropped.
    """
    result: dict[str, PolicyConfig] = {}
    for name, value in (raw or {}).items():
        level = ""
        properties: dict[str, Any] | None = None
        if isinstance(value, str):
            level = value
        elif isinstance(value, Mapping):
            properties = {k: v for k, v in value.items() if k != "enforcementLevel"} or None
            level = value.get("enforcementLevel", "")
            if not isinstance(level, str):
                raise ValueError(f"{name}: {level!r} is not a valid enforcement level")
        else:
            raise ValueError(f"{name}: {value!r} is not a valid value; must be a string or object")
        if level and level not in _LEVELS:
            raise ValueError(f"{name}: {level!r} is not a valid enforcement level")
        if level or properties:
            result[name] = PolicyConfig(level, properties)
    return result


def load_pack_config(path: Path) -> dict[str, Any]:
    """Reads a `--policy-pack-config` JSON file (empty file -> no config)."""
    text = path.read_text()
    return json.loads(text) if text.strip() else {}


def reconcile_config(info: AnalyzerInfo, raw: Mapping[str, Any] | None) -> dict[str, PolicyConfig]:
    """The config the engine sends to Configure: defaults, then "all", then per policy.

    Mirrors ReconcilePolicyPackConfig in pulumi/pkg: schema defaults and default levels first,
    "all" sets every level, named entries override; the result is validated against each
    policy's config schema (an invalid config stops the engine, so it raises ValueError here).
    """
    given = parse_pack_config(raw)
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


def _drain(stream: Any, sink: queue.Queue[str | None]) -> None:
    for line in iter(stream.readline, b""):
        sink.put(line.decode(errors="replace"))
    sink.put(None)


class PolicyPackProcess:
    """A running policy pack; use as a context manager so the process is always stopped."""

    def __init__(
        self,
        pack_dir: Path,
        *,
        project: str = "safeguard",
        stack: str = "dev",
        dry_run: bool = True,
        launcher: Literal["engine", "script"] = "engine",
        startup_timeout: float = 60.0,
        call_timeout: float = 60.0,
        python: str = sys.executable,
    ) -> None:
        """`launcher="engine"` starts the pack like the Pulumi engine does; "script" runs
        `python -u <pack_dir>/__main__.py` from the current directory instead."""
        self.pack_dir = Path(pack_dir).resolve()
        self.project = project
        self.stack = stack
        self._dry_run = dry_run
        self._launcher = launcher
        self._startup_timeout = startup_timeout
        self._call_timeout = call_timeout
        self._python = python
        self._engine = _EngineServicer()
        self._engine_server: grpc.Server | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None
        self._stub: analyzer_pb2_grpc.AnalyzerStub | None = None
        self._stdout: queue.Queue[str | None] = queue.Queue()
        self._stderr_lines: list[str] = []
        self._stderr_thread: threading.Thread | None = None
        self._info: AnalyzerInfo | None = None

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

    def start(self) -> None:
        if self._process is not None:
            raise PolicyPackError("the policy pack is already started")
        if not (self.pack_dir / "__main__.py").is_file():
            raise PolicyPackError(f"{self.pack_dir} has no __main__.py; is it a policy pack?")
        try:
            engine_address = self._start_engine()
            self._spawn(engine_address)
            port = self._read_port()
            # The engine's limit (400 MiB) rather than gRPC's 4 MiB: a large stack's
            # AnalyzeStack request, or the diagnostics of a large batch, exceed the default.
            self._channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=_CHANNEL_OPTIONS)
            try:
                grpc.channel_ready_future(self._channel).result(timeout=self._startup_timeout)
            except grpc.FutureTimeoutError:
                raise PolicyPackError(self._failure(f"did not accept gRPC on {port}")) from None
            self._stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)
        except BaseException:
            self.stop()
            raise

    def _start_engine(self) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        engine_pb2_grpc.add_EngineServicer_to_server(self._engine, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._engine_server = server
        return f"127.0.0.1:{port}"

    def _spawn(self, engine_address: str) -> None:
        env = {
            **os.environ,
            "PULUMI_PROJECT": self.project,
            "PULUMI_STACK": self.stack,
            "PULUMI_DRY_RUN": "true" if self._dry_run else "false",
            "PULUMI_ORGANIZATION": "organization",
            "PYTHONUNBUFFERED": "1",
        }
        if self._launcher == "engine":
            command = [self._python, "-u", "-m", "pulumi.policy", engine_address, "."]
            cwd = self.pack_dir
        else:
            command = [self._python, "-u", str(self.pack_dir / "__main__.py")]
            cwd = Path.cwd()
        self._process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        threading.Thread(
            target=_drain, args=(self._process.stdout, self._stdout), daemon=True
        ).start()
        self._stderr_thread = threading.Thread(target=self._collect_stderr, daemon=True)
        self._stderr_thread.start()

    def _collect_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        for line in iter(self._process.stderr.readline, b""):
            self._stderr_lines.append(line.decode(errors="replace"))

    def _read_port(self) -> int:
        try:
            line = self._stdout.get(timeout=self._startup_timeout)
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
        return "".join(self._stderr_lines)

    @property
    def logs(self) -> list[LogRecord]:
        """Log calls the pack made to the engine."""
        return list(self._engine.records)

    def _failure(self, what: str, *, exiting: bool = False) -> str:
        process = self._process
        if process is not None:
            if exiting:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
            if process.poll() is not None and self._stderr_thread is not None:
                # The process is gone: let the reader finish so the whole stderr is shown.
                self._stderr_thread.join(timeout=5)
        code = process.poll() if process is not None else None
        status = f" (exit code {code})" if code is not None else ""
        stderr = self.stderr.strip() or "(nothing on stderr)"
        return f"policy pack {self.pack_dir} {what}{status}; its stderr:\n{stderr}"

    def stop(self) -> None:
        """Stops the pack process and the engine service; safe to call more than once."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        self._stub = None
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process is not None:
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        if self._engine_server is not None:
            self._engine_server.stop(grace=None)
            self._engine_server = None

    # -- calls --

    def _call(self, method: str, request: Any) -> Any:
        if self._stub is None:
            raise PolicyPackError("the policy pack is not running; use it as a context manager")
        try:
            return getattr(self._stub, method)(request, timeout=self._call_timeout)
        except grpc.RpcError as error:
            detail = f"{method} failed: {error.code().name}: {error.details()}"  # type: ignore[attr-defined]
            raise PolicyPackError(self._failure(detail)) from error

    def info(self) -> AnalyzerInfo:
        """GetAnalyzerInfo: the pack's name, version and policies."""
        response = self._call("GetAnalyzerInfo", empty_pb2.Empty())
        kinds = {
            analyzer_pb2.POLICY_TYPE_RESOURCE: "resource",
            analyzer_pb2.POLICY_TYPE_STACK: "stack",
        }
        self._info = AnalyzerInfo(
            name=response.name,
            version=response.version,
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
        info = self._info or self.info()
        reconciled = reconcile_config(info, raw)
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, policy_config in reconciled.items():
            entry = analyzer_pb2.PolicyConfig(
                enforcementLevel=_LEVELS.get(policy_config.enforcement_level, analyzer_pb2.ADVISORY)
            )
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
                policy_pack_version=d.policyPackVersion,
            )
            for d in response.diagnostics
        ]

    def _provider(self, resource: Resource) -> analyzer_pb2.AnalyzerProviderResource | None:
        provider = resource.provider
        if provider is None:
            return None
        return analyzer_pb2.AnalyzerProviderResource(
            type=provider.type,
            name=provider.name,
            urn=provider.urn,
            properties=to_struct(provider.properties),
        )

    def _analyze_request(self, resource: Resource) -> analyzer_pb2.AnalyzeRequest:
        return analyzer_pb2.AnalyzeRequest(
            type=resource.type,
            name=resource.name,
            urn=self._urn(resource),
            properties=to_struct(resource.properties),
            options=analyzer_pb2.AnalyzerResourceOptions(parent=resource.parent),
            provider=self._provider(resource),
        )

    def analyze(self, resource: Resource) -> list[Diagnostic]:
        """Analyze: the diagnostics of the resource policies for one resource."""
        return self._diagnostics(self._call("Analyze", self._analyze_request(resource)))

    def analyze_all(
        self, resources: Iterable[Resource], *, in_flight: int = 8
    ) -> tuple[list[tuple[Resource, list[Diagnostic]]], list[Diagnostic]]:
        """What the engine does over a whole update: Analyze for every resource, then
        AnalyzeStack over all of them. Returns ([(resource, its diagnostics)], stack
        diagnostics). See `analyze_each`."""
        results, stack = self.analyze_each(resources, in_flight=in_flight)
        return results, self.analyze_stack_of(stack)

    def analyze_each(
        self, resources: Iterable[Resource], *, in_flight: int = 8
    ) -> tuple[list[tuple[Resource, list[Diagnostic]]], list[analyzer_pb2.AnalyzerResource]]:
        """Analyze for every resource; returns [(resource, its diagnostics)] and the resources
        as AnalyzeStack takes them, for `analyze_stack_of` (of this pack or another).

        One channel, up to `in_flight` Analyze calls outstanding (the engine analyzes resources
        concurrently too), so encoding, transport and the pack's work overlap; each resource's
        properties are encoded once for both calls. `resources` is consumed lazily: it may be a
        generator that is still parsing input while the pack works.
        """
        if self._stub is None:
            raise PolicyPackError("the policy pack is not running; use it as a context manager")
        method = self._stub.Analyze
        pending: collections.deque[tuple[Resource, Any]] = collections.deque()
        results: list[tuple[Resource, list[Diagnostic]]] = []
        stack: list[analyzer_pb2.AnalyzerResource] = []

        def settle() -> None:
            resource, call = pending.popleft()
            try:
                results.append((resource, self._diagnostics(call.result())))
            except grpc.RpcError as error:
                detail = f"Analyze failed: {error.code().name}: {error.details()}"  # type: ignore[attr-defined]
                raise PolicyPackError(self._failure(detail)) from error

        try:
            for resource in resources:
                request = self._analyze_request(resource)
                stack.append(self._stack_resource(resource, request.properties))
                pending.append((resource, method.future(request, timeout=self._call_timeout)))
                if len(pending) >= in_flight:
                    settle()
            while pending:
                settle()
        finally:
            for _, call in pending:
                call.cancel()
        return results, stack

    def analyze_stack_of(self, resources: list[analyzer_pb2.AnalyzerResource]) -> list[Diagnostic]:
        """AnalyzeStack over resources `analyze_each` prepared."""
        request = analyzer_pb2.AnalyzeStackRequest(resources=resources)
        return self._diagnostics(self._call("AnalyzeStack", request))

    def analyze_stack(self, resources: Iterable[Resource]) -> list[Diagnostic]:
        """AnalyzeStack: the diagnostics of the stack policies over all resources."""
        request = analyzer_pb2.AnalyzeStackRequest(
            resources=[self._stack_resource(r, to_struct(r.properties)) for r in resources]
        )
        return self._diagnostics(self._call("AnalyzeStack", request))

    def _stack_resource(
        self, r: Resource, properties: struct_pb2.Struct
    ) -> analyzer_pb2.AnalyzerResource:
        return analyzer_pb2.AnalyzerResource(
            type=r.type,
            name=r.name,
            urn=self._urn(r),
            properties=properties,
            options=analyzer_pb2.AnalyzerResourceOptions(parent=r.parent),
            provider=self._provider(r),
            parent=r.parent,
            dependencies=list(r.dependencies),
            propertyDependencies={
                key: analyzer_pb2.AnalyzerPropertyDependencies(urns=list(urns))
                for key, urns in r.property_dependencies.items()
            },
        )
