"""Offline render: the desired state of a stack as files, one per resource, secrets redacted.

Kubernetes resources become plain manifests (apiVersion, kind, metadata, spec...) that
`kubectl apply --dry-run=client` accepts; Docker and other resources are written as their inputs.
The same stack file always renders to byte-identical files.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from infra.offline.output import emit
from infra.offline.runtime import Recorded, StackRun, redact, run_stack
from infra.offline.stack_files import require_stack
from stacks import SettingsError

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, so nginx.conf and rule files stay readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _integral(value: Any) -> Any:
    """The wire format carries every number as a float; manifests want 3, not 3.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def document(resource: Recorded, passwords: tuple[str, ...]) -> dict[str, Any]:
    """The file content for one resource: a manifest for Kubernetes, the inputs otherwise."""
    body = _integral(redact(resource.inputs, passwords))
    if resource.type.startswith("kubernetes:"):
        return body
    if resource.type == "random:index/randomPassword:RandomPassword":
        body = {**body, "result": "[secret]"}
    return {"type": resource.type, "name": resource.name, "inputs": body}


def file_name(resource: Recorded) -> str:
    """Stable path of a resource's file: <provider>/<Kind>-<name>.yaml."""
    provider = resource.type.split(":", 1)[0]
    return f"{provider}/{resource.kind}-{_UNSAFE.sub('_', resource.name)}.yaml"


def render(run: StackRun) -> dict[str, str]:
    """File path -> content for every custom resource of the run."""
    passwords = tuple(sorted(run.passwords.values(), key=len, reverse=True))
    files: dict[str, str] = {}
    for resource in run.resources:
        if not resource.custom:
            continue
        path = file_name(resource)
        if path in files:
            raise ValueError(f"two resources render to {path}")
        files[path] = yaml.dump(
            document(resource, passwords),
            Dumper=_Dumper,
            sort_keys=True,
            default_flow_style=False,
            allow_unicode=True,
            width=100,
        )
    return dict(sorted(files.items()))


def render_stack(stack: str, out: Path) -> list[Path]:
    """Render `stack` into `out/<stack>/`, replacing what an earlier render left there; the
    program's warnings go to stderr, as `pulumi preview` shows them."""
    target = out / stack
    run = run_stack(stack)
    for warning in run.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    files = render(run)
    if target.exists():
        for old in sorted(target.rglob("*.yaml")):
            old.unlink()
    written = []
    for relative, content in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        written.append(path)
    return written


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "exit codes: 0 rendered, 2 unknown stack or invalid settings"
    parser.add_argument("--stack", required=True, help="dev, staging or production")
    parser.add_argument(
        "--out", type=Path, default=Path("render"), help="writes OUT/STACK/ (default: ./render)"
    )
    parser.set_defaults(handler=_command)


def _command(args: argparse.Namespace) -> int:
    require_stack(args.stack)
    try:
        written = render_stack(args.stack, args.out)
    except SettingsError as error:
        emit(str(error), sys.stderr)
        return 2
    emit(f"rendered {len(written)} files into {args.out / args.stack}")
    return 0
