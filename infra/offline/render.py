"""Offline render: the desired state of a stack as files, one per resource, secrets redacted.

Kubernetes resources become plain manifests (apiVersion, kind, metadata, spec...) that
`kubectl apply --dry-run=client` accepts; Docker and other resources are written as their inputs.
The same stack file always renders to byte-identical files. `index.json` beside them names each
file's resource as the engine identifies it (URN and aliases) and the providers' config, which
the diff needs.

With `SAFEGUARD_SECRET_FINGERPRINTS=<hex key>` in the environment, each redacted value carries
a digest keyed with it (`[secret 0123456789abcdef]`): two renders with the same key show which
secrets changed, and without the key the digests say nothing about the values. The diff picks a
new random key for each comparison.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Final

import yaml

from infra.offline.output import emit
from infra.offline.runtime import Fingerprint, Recorded, StackRun, redact, run_stack, unwrap
from infra.offline.stack_files import require_stack
from stacks import SettingsError

FINGERPRINT_KEY: Final = "SAFEGUARD_SECRET_FINGERPRINTS"
"""The environment variable holding the key of the secret digests (hex)."""
INDEX: Final = "index.json"

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


def fingerprints(key: str | None) -> Fingerprint | None:
    """The keyed digest of secret values for `key` (hex); None without a key."""
    if not key:
        return None
    try:
        secret = bytes.fromhex(key)
    except ValueError:
        raise ValueError(
            f"{FINGERPRINT_KEY} must be hex, like the output of `openssl rand -hex 16`"
        ) from None

    def fingerprint(value: Any) -> str:
        text = json.dumps(unwrap(value), sort_keys=True)
        return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:16]

    return fingerprint


def document(
    resource: Recorded, passwords: tuple[str, ...], fingerprint: Fingerprint | None = None
) -> dict[str, Any]:
    """The file content for one resource: a manifest for Kubernetes, the inputs otherwise."""
    body = _integral(redact(resource.inputs, passwords, fingerprint))
    if resource.type.startswith("kubernetes:"):
        return body
    if resource.type == "random:index/randomPassword:RandomPassword":
        result = resource.outputs.get("result")
        body = {**body, "result": redact(result, (), fingerprint) if result else "[secret]"}
    return {"type": resource.type, "name": resource.name, "inputs": body}


def file_name(resource: Recorded) -> str:
    """Stable path of a resource's file: <provider>/<Kind>-<name>.yaml."""
    provider = resource.type.split(":", 1)[0]
    return f"{provider}/{resource.kind}-{_UNSAFE.sub('_', resource.name)}.yaml"


def render(run: StackRun, fingerprint: Fingerprint | None = None) -> dict[str, str]:
    """File path -> content for every custom resource the run creates (reads left out)."""
    passwords = tuple(sorted(run.passwords.values(), key=len, reverse=True))
    files: dict[str, str] = {}
    for resource in run.resources:
        # A read is the cluster's object, not desired state: applying it would make an empty one.
        if not resource.custom or resource.external:
            continue
        path = file_name(resource)
        if path in files:
            raise ValueError(f"two resources render to {path}")
        files[path] = yaml.dump(
            document(resource, passwords, fingerprint),
            Dumper=_Dumper,
            sort_keys=True,
            default_flow_style=False,
            allow_unicode=True,
            width=100,
        )
    return dict(sorted(files.items()))


def index(run: StackRun) -> dict[str, Any]:
    """Per rendered file, the resource's URN and alias URNs (how the engine matches it with the
    last deployment's state), and the stack config of each provider package."""
    packages = {r.type.split(":", 1)[0] for r in run.resources if r.custom}
    return {
        "resources": {
            file_name(r): {"urn": r.urn, "aliases": list(r.options.aliases)}
            for r in run.resources
            if r.custom and not r.external
        },
        "providers": {
            package: {
                key.split(":", 1)[1]: value
                for key, value in sorted(run.config.items())
                if key.startswith(f"{package}:")
            }
            for package in sorted(packages)
        },
    }


def render_stack(stack: str, out: Path, fingerprint: Fingerprint | None = None) -> list[Path]:
    """Render `stack` into `out/<stack>/`, replacing what an earlier render left there; the
    program's warnings go to stderr, as `pulumi preview` shows them."""
    target = out / stack
    run = run_stack(stack)
    for warning in run.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    files = render(run, fingerprint)
    if target.exists():
        for old in sorted(target.rglob("*.yaml")):
            old.unlink()
    written = []
    for relative, content in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        written.append(path)
    target.mkdir(parents=True, exist_ok=True)
    (target / INDEX).write_text(json.dumps(index(run), indent=2, sort_keys=True) + "\n")
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
        written = render_stack(args.stack, args.out, fingerprints(os.environ.get(FINGERPRINT_KEY)))
    except SettingsError as error:
        emit(str(error), sys.stderr)
        return 2
    except ValueError as error:
        emit(f"render: {error}", sys.stderr)
        return 2
    emit(f"rendered {len(written)} files into {args.out / args.stack}")
    return 0
