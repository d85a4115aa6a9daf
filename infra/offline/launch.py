"""How the CLI starts a Python policy pack: the interpreter, the command line, the environment
and the directory, and the engine address the pack is given.

Nothing here imports gRPC or the Pulumi SDK (a quarter of a second of a check's start-up), so a
check can start its packs first and import those while the packs boot on the other core;
`analyzer.PolicyPackProcess` then adopts a started pack and drives it.

The engine's own gRPC service is started before the pack in the CLI (pulumi/pulumi@v3.259.0:
pkg/resource/plugin/analyzer_plugin.go#NewPolicyAnalyzer passes the address of a server that is
already listening). Here the address is reserved first: a socket bound with SO_REUSEPORT holds
the port, so nothing else takes it, until the engine's gRPC server (which sets SO_REUSEPORT
too) binds it and the reservation is closed. Nothing reaches that address before then: the
pack only parses it at start (pulumi/pulumi-policy@v1.21.0:sdk/python/lib/pulumi/policy/
__main__.py#main never connects to it), and the first call of any kind comes from the engine,
after its server listens.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Literal

import yaml

Launcher = Literal["language-host", "shim", "script"]

PYTHON_HINT: Final = (
    "The CLI runs a Python pack with python3 (or PULUMI_PYTHON_CMD) from PATH, no virtualenv: "
    "it needs Python 3.10 or newer with policies/requirements.txt installed (activate the "
    "virtualenv that has them, or set PULUMI_PYTHON_CMD to its python)."
)


class PolicyPackError(RuntimeError):
    """The pack failed to start, or a call to it failed; the message carries its stderr."""


def pack_project(pack_dir: Path) -> dict[str, Any]:
    """PulumiPolicy.yaml of the pack, as the CLI loads it (workspace.LoadPolicyPack)."""
    path = pack_dir / "PulumiPolicy.yaml"
    try:
        loaded = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PolicyPackError(
            f"{pack_dir} has no PulumiPolicy.yaml; is it a policy pack?"
        ) from None
    except yaml.YAMLError as error:
        raise PolicyPackError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(loaded, dict):
        raise PolicyPackError(f"{path} must be a mapping")
    return loaded


def _runtime_options(project: Mapping[str, Any]) -> dict[str, Any]:
    runtime = project.get("runtime")
    options = runtime.get("options") if isinstance(runtime, Mapping) else None
    return dict(options) if isinstance(options, Mapping) else {}


def language_host_python(pack_dir: Path, project: Mapping[str, Any]) -> str:
    """The interpreter the Python language host picks for a pack since CLI 3.221
    (pulumi/pulumi@v3.259.0:sdk/python/cmd/pulumi-language-python/main.go#parseOptions, with no
    default virtualenv for analyzers; sdk/python/toolchain/toolchain.go#ResolveToolchain;
    sdk/python/toolchain/pip.go#CommandPath)."""
    options = _runtime_options(project)
    toolchain = options.get("toolchain", "")
    if toolchain not in ("", "pip"):
        raise PolicyPackError(f"the {toolchain} toolchain of {pack_dir} is not emulated here")
    if not toolchain:
        for directory in (pack_dir, *pack_dir.parents):
            for lock in ("uv.lock", "poetry.lock"):
                if (directory / lock).is_file():
                    raise PolicyPackError(
                        f"{directory / lock} makes the CLI run the pack with "
                        f"{lock.split('.')[0]}, which is not emulated here"
                    )
    if options.get("virtualenv"):
        return str(pack_dir / str(options["virtualenv"]) / "bin" / "python")
    names = [os.environ["PULUMI_PYTHON_CMD"]] if os.environ.get("PULUMI_PYTHON_CMD") else []
    for name in names or ["python3", "python"]:
        found = shutil.which(name)
        if found:
            return found
    raise PolicyPackError(
        "no python3 on PATH: the CLI runs the pack with python3 (or PULUMI_PYTHON_CMD) from PATH"
    )


def shim_python(pack_dir: Path, project: Mapping[str, Any]) -> str:
    """The interpreter `pulumi-analyzer-policy-python` runs (pulumi/pulumi@v3.220.0:
    sdk/python/dist/pulumi-analyzer-policy-python): the `virtualenv` option's python, else
    `${PULUMI_PYTHON_CMD:-python3}`."""
    virtualenv = _runtime_options(project).get("virtualenv")
    if virtualenv:
        return str(pack_dir / str(virtualenv) / "bin" / "python")
    return os.environ.get("PULUMI_PYTHON_CMD") or "python3"


@dataclass(frozen=True, kw_only=True)
class PackLaunch:
    """One pack started for one stack, as the CLI starts it: see `analyzer`'s module docstring
    for the launchers. `dry_run` and `config` are the stack's, as ConfigureStack carries them."""

    pack_dir: Path
    project: str = "safeguard"
    stack: str = "dev"
    organization: str = "organization"
    dry_run: bool = True
    config: Mapping[str, str] = field(default_factory=dict)
    launcher: Launcher = "language-host"
    python: str | None = None
    """The interpreter instead of the one the launcher would pick."""

    def __post_init__(self) -> None:
        if self.launcher not in ("language-host", "shim", "script"):
            raise ValueError(f"unknown launcher {self.launcher!r}")
        object.__setattr__(self, "pack_dir", Path(self.pack_dir).resolve())
        object.__setattr__(self, "config", dict(self.config))

    def project_file(self) -> dict[str, Any]:
        """PulumiPolicy.yaml ({} for the "script" launcher, which does not read it)."""
        return pack_project(self.pack_dir) if self.launcher != "script" else {}

    def variables(self) -> dict[str, str]:
        """The stack's variables the pack gets; only the non-empty ones: pulumi/pulumi@v3.259.0:
        sdk/python/cmd/pulumi-language-python/main.go#RunPlugin (maybeAppendEnv), and
        pulumi/pulumi@v3.220.0:sdk/go/common/resource/plugin/analyzer_plugin.go#constructEnv
        before 3.221."""
        values = {
            "PULUMI_ORGANIZATION": self.organization,
            "PULUMI_PROJECT": self.project,
            "PULUMI_STACK": self.stack,
            "PULUMI_DRY_RUN": "true" if self.dry_run else "false",
            "PULUMI_CONFIG": json.dumps(self.config) if self.config else "",
        }
        return {k: v for k, v in values.items() if v}

    def start(self) -> StartedPack:
        """The pack's process, started with the address of an engine port reserved for it."""
        if not (self.pack_dir / "__main__.py").is_file():
            raise PolicyPackError(f"{self.pack_dir} has no __main__.py; is it a policy pack?")
        project = self.project_file()
        reservation = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            reservation.bind(("127.0.0.1", 0))
            engine_address = f"127.0.0.1:{reservation.getsockname()[1]}"
            command, env, cwd = self._command(engine_address, project)
            try:
                process = subprocess.Popen(
                    command,
                    cwd=cwd,
                    env={**env, "PYTHONUNBUFFERED": "1"},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            except OSError as error:
                raise PolicyPackError(
                    f"cannot start the policy pack with {command[0]}: {error}; {PYTHON_HINT}"
                ) from error
        except BaseException:
            reservation.close()
            raise
        return StartedPack(self, process, command, engine_address, reservation, project)

    def _command(
        self, engine_address: str, project: Mapping[str, Any]
    ) -> tuple[list[str], dict[str, str], Path]:
        if self.launcher == "language-host":
            python = self.python or language_host_python(self.pack_dir, project)
            command = [python, "-u", "-m", "pulumi.policy", engine_address, str(self.pack_dir)]
            # The language host puts the stack's variables first and the CLI's whole environment
            # after them; Go's exec keeps the last of duplicate keys.
            return command, {**self.variables(), **os.environ}, self.pack_dir
        if self.launcher == "shim":
            python = self.python or shim_python(self.pack_dir, project)
            command = [python, "-u", "-m", "pulumi.policy", engine_address, "."]
            return command, {**os.environ, **self.variables()}, self.pack_dir
        command = [self.python or sys.executable, "-u", str(self.pack_dir / "__main__.py")]
        return command, {**os.environ, **self.variables()}, Path.cwd()


class StartedPack:
    """A pack's process from `PackLaunch.start`: its stdout read line by line (the port it
    prints), its stderr kept, and the engine port reserved until `release_engine_port`."""

    def __init__(
        self,
        launch: PackLaunch,
        process: subprocess.Popen[bytes],
        command: list[str],
        engine_address: str,
        reservation: socket.socket,
        project: Mapping[str, Any],
    ) -> None:
        self.launch = launch
        self.project = dict(project)
        """PulumiPolicy.yaml as the pack was started with it."""
        self.process = process
        self.command = command
        """The command line the pack was started with."""
        self.engine_address = engine_address
        self._reservation: socket.socket | None = reservation
        self.stdout: queue.Queue[str | None] = queue.Queue()
        """The lines of the pack's stdout; None once it is closed."""
        self._stderr_lines: list[str] = []
        assert process.stdout is not None and process.stderr is not None
        threading.Thread(
            target=_lines,
            args=(process.stdout, self.stdout.put, lambda: self.stdout.put(None)),
            daemon=True,
        ).start()
        self._stderr_thread = threading.Thread(
            target=_lines,
            args=(process.stderr, self._stderr_lines.append, lambda: None),
            daemon=True,
        )
        self._stderr_thread.start()

    @property
    def engine_port(self) -> int:
        return int(self.engine_address.rpartition(":")[2])

    def release_engine_port(self) -> None:
        """Closes the reservation: call it once the engine's server has bound the port."""
        if self._reservation is not None:
            self._reservation.close()
            self._reservation = None

    @property
    def stderr(self) -> str:
        """Everything the pack wrote to stderr so far."""
        return "".join(self._stderr_lines)

    def stderr_when_gone(self) -> str:
        """`stderr`, whole if the process has exited (its reader is let finish first)."""
        if self.process.poll() is not None:
            self._stderr_thread.join(timeout=5)
        return self.stderr

    def stop(self) -> None:
        """Ends the process (terminate, then kill) and the reservation; safe more than once."""
        self.release_engine_port()
        process = self.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _lines(stream: IO[bytes], sink: Callable[[str], object], end: Callable[[], object]) -> None:
    with contextlib.suppress(ValueError, OSError):  # closed by `stop` while reading
        for line in iter(stream.readline, b""):
            sink(line.decode(errors="replace"))
    end()
