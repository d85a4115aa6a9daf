"""Running the program without an engine: the recording Mocks, stack config from the stack file,
and helpers for the secret wrappers found in recorded inputs.

The mock monitor hands `new_resource` each resource's inputs in the engine's wire format
(camelCase, secrets wrapped), exactly what a policy pack receives. Outputs are deterministic: the
same program always yields the same ids and generated passwords.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.offline.wire import SECRET_SIG, SIG_KEY
from stacks import SettingsError
from stacks.settings import encrypted_placeholder

PROJECT = "safeguard"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
REDACTED = "[secret]"
ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class Recorded:
    """One resource as the engine would have received it."""

    type: str
    name: str
    inputs: dict[str, Any]
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

    @property
    def kind(self) -> str:
        """Last part of the type token: Deployment, Container, RandomPassword..."""
        return self.type.rsplit(":", 1)[-1]


_registration = threading.local()
"""The RegisterResource request being served on this thread, for Mocks.new_resource."""


class _Monitor(MockMonitor):
    """The SDK's mock monitor, with URNs built as the engine builds them (the whole chain of
    parent types, the root stack left out) and each registration's request handed to
    `Mocks.new_resource`, which the SDK only gives type, name and inputs."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
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
        return super().ReadResource(request)

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        if parent:
            parent_type = parent.split("::")[2]
            if parent_type != ROOT_STACK_TYPE:
                type_ = f"{parent_type}${type_}"
        stack, project = runtime_settings.get_stack(), runtime_settings.get_project()
        return f"urn:pulumi:{stack}::{project}::{type_}::{name}"

    def RegisterResource(self, request: Any) -> Any:
        self._own_loop()
        _registration.request = request
        _registration.urn = self.make_urn(request.parent, request.type, request.name)
        try:
            return super().RegisterResource(request)
        finally:
            _registration.request = _registration.urn = None


@dataclass
class Mocks(pulumi.runtime.Mocks):
    """Records every registered resource and answers with deterministic outputs."""

    resources: list[Recorded] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict)
    """Generated RandomPassword results, by resource name."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        digest = hashlib.sha256(f"{args.typ}/{args.name}".encode()).hexdigest()
        if args.typ == "random:index/randomPassword:RandomPassword":
            length = int(args.inputs.get("length", 32))
            outputs["result"] = self.passwords[args.name] = (digest * 2)[:length]
        elif args.typ == "docker:index/remoteImage:RemoteImage":
            outputs["imageId"] = f"sha256:{digest}"
            outputs["repoDigest"] = f"{args.inputs.get('name')}@sha256:{digest}"
        elif args.typ == "docker:index/image:Image":
            outputs["repoDigest"] = f"{args.inputs.get('imageName')}@sha256:{digest}"
        request = getattr(_registration, "request", None)
        self.resources.append(
            Recorded(
                type=args.typ,
                name=args.name,
                inputs=args.inputs,
                custom=bool(args.custom),
                urn=getattr(_registration, "urn", None) or "",
                parent=request.parent if request is not None else "",
                provider=args.provider or "",
                dependencies=tuple(request.dependencies) if request is not None else (),
                property_dependencies={
                    key: tuple(deps.urns) for key, deps in request.propertyDependencies.items()
                }
                if request is not None
                else {},
            )
        )
        return f"mock-{args.name}", outputs

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
    outputs: dict[str, Any]
    secret_outputs: frozenset[str]
    warnings: tuple[str, ...] = ()
    """What the program logged with `pulumi.log.warn`, which `pulumi preview` would show."""

    def of_type(self, suffix: str) -> list[Recorded]:
        """Custom resources whose type token ends with `suffix` (e.g. "apps/v1:Deployment")."""
        return [r for r in self.resources if r.custom and r.type.endswith(suffix)]


def stack_config(stack: str, root: Path = PROJECT_ROOT) -> tuple[dict[str, str], list[str]]:
    """The stack file's config in the shape the engine passes it: namespaced keys, string values
    (objects and lists as JSON). Encrypted values cannot be read here; they become a marked
    placeholder, still flagged as secret."""
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
            config[full] = encrypted_placeholder(full)
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
) -> StackRun:
    """Run `program` under fresh mocks with `config`; return the resources and stack outputs.

    Exceptions from the program propagate after the runtime has settled, so a failure before any
    registration leaves `Mocks.resources` empty.
    """
    mocks = Mocks()
    engine_log = _EngineLog()
    # A loop of its own per run: the runtime awaits on the current loop, and whatever ran before
    # in this thread (asyncio.run, another run) may have closed or unset it.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    monitor = _Monitor(mocks)
    try:
        runtime_settings.reset_options(project=PROJECT, stack=stack, preview=False)
        pulumi.runtime.set_all_config(config, secret_keys or [])
        pulumi.runtime.set_mocks(
            mocks,
            project=PROJECT,
            stack=stack,
            preview=False,
            logger=engine_log.logger,
            monitor=monitor,
        )
        try:
            _sync_await(run_pulumi_func(program))
        except BaseException as error:
            error.recorded = mocks.resources  # type: ignore[attr-defined]
            raise
        root = runtime_settings.get_root_resource()
        outputs: dict[str, Any] = {}
        secret: set[str] = set()
        for key, value in (getattr(root, "outputs", None) or {}).items():
            output = pulumi.Output.from_input(value)
            outputs[key] = _sync_await(output.future())
            if _sync_await(output.is_secret()):
                secret.add(key)
    finally:
        # The registrations ran on the loop's executor threads: wait for them before closing
        # the loops they used.
        loop.run_until_complete(loop.shutdown_default_executor())
        monitor.close_loops()
        asyncio.set_event_loop(None)
        loop.close()
    return StackRun(
        resources=list(mocks.resources),
        passwords=dict(mocks.passwords),
        outputs=outputs,
        secret_outputs=frozenset(secret),
        warnings=tuple(engine_log.warnings),
    )


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


def run_stack(stack: str, overrides: dict[str, str] | None = None) -> StackRun:
    """Load and validate the stack's settings and run the whole program, as `pulumi up` would."""
    from infra.program import run
    from stacks import load_settings

    config, secret_keys = stack_config(stack)
    config.update(overrides or {})
    return run_program(
        lambda: run(load_settings()), stack=stack, config=config, secret_keys=secret_keys
    )


def is_secret(value: Any) -> bool:
    """True for a value the wire format marks as secret."""
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def unwrap(value: Any) -> Any:
    """The value with every secret wrapper removed (for reading, never for writing out)."""
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def redact(value: Any, passwords: tuple[str, ...] = ()) -> Any:
    """The value with secrets replaced by REDACTED: wrapped values keep their shape (keys of a
    map, `NAME=` of an env entry) and any generated password is masked wherever it appears."""
    if is_secret(value):
        return _mask(unwrap(value))
    if isinstance(value, dict):
        return {k: redact(v, passwords) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, passwords) for v in value]
    if isinstance(value, str):
        for password in passwords:
            value = value.replace(password, REDACTED)
    return value


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, str) and "=" in value and value.split("=", 1)[0].isidentifier():
        return f"{value.split('=', 1)[0]}={REDACTED}"
    return REDACTED
