"""Assembles the safeguard CrossGuard policy pack; the policies live in one module per area."""

import sys
from pathlib import Path

# The engine runs this file through runpy with cwd=policies; pinning the pack directory on
# sys.path makes the sibling imports work however the pack is started.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sdk
import cors
import images
import namespaces
import network
import probes
import resources
import secret_env
import security
import stack
from pulumi_policy import PolicyPack

_sdk.share_request_properties()
_sdk.skip_other_types()
PolicyPack(
    name="safeguard",
    policies=[
        *security.POLICIES,
        *probes.POLICIES,
        *cors.POLICIES,
        *resources.POLICIES,
        *images.POLICIES,
        *secret_env.POLICIES,
        *network.POLICIES,
        *namespaces.POLICIES,
        *stack.POLICIES,
    ],
)
