"""The upstream sources the offline tool's engine and provider rules were read from, and the
installed versions those readings hold for.

Every rule the mocks, the gate, the export and the diff take from the Pulumi engine, the policy
SDK or a provider cites `<repo>@<tag>:<file>#<function>` beside it in a comment, and names the
distribution it belongs to here. `tests/offline/test_upstream.py` fails as soon as an installed
distribution reaches `below`: whoever upgrades re-reads the cited files at the new tag, fixes
what moved and raises the bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, kw_only=True)
class Upstream:
    """One installed distribution and the upstream source its rules were verified against."""

    distribution: str
    """The pip distribution whose installed version is checked (importlib.metadata)."""
    read: str
    """The upstream repository and tag the cited files were read at."""
    installed: str
    """The version installed here when the rules were last checked."""
    below: str
    """The rules hold for installed versions lower than this."""
    note: str = ""
    """Where the reading and the installed version differ, and why the bound still holds."""

    def __post_init__(self) -> None:
        if not (self.distribution and self.read and self.installed and self.below):
            raise ValueError(f"{self.distribution or '?'}: every field but `note` is required")


UPSTREAM: Final[dict[str, Upstream]] = {
    entry.distribution: entry
    for entry in (
        Upstream(
            distribution="pulumi",
            read="pulumi/pulumi@v3.259.0 (Go engine and CLI; pulumi/pulumi@v3.220.0 for the launch "
            "before CLI 3.221); pulumi==3.272.0 (the Python SDK)",
            installed="3.272.0",
            below="3.273",
            note="No Go source of v3.272.0 was available: the engine files cited at v3.259.0 "
            "(analyzer_plugin.go, step_generator.go, deployment_executor.go, analyze_snapshot.go, "
            "apitype/core.go, the Python language host) were unchanged from v3.259.0 to the "
            "newest commit read (pkg/v3.259.0-14-g1b59498), but for step_generator.go's "
            "replacement of DeletedWith dependents and its diff of secret and output values, "
            "which the offline diff does not imitate. "
            "The Python SDK (runtime/rpc.py, mocks.py, stack.py) was read as installed.",
        ),
        Upstream(
            distribution="pulumi_policy",
            read="pulumi/pulumi-policy@v1.21.0",
            installed="1.21.0",
            below="1.22",
        ),
        Upstream(
            distribution="pulumi_kubernetes",
            read="pulumi/pulumi-kubernetes@v4.32.0 "
            "(with kubernetes/client-go@v0.36.2, which it pins)",
            installed="4.34.2",
            below="4.35",
            note="Verified against v4.32.0 (provider.go, diff.go, kinds.go, naming.go, "
            "unstructured.go); no v4.33/v4.34 source was available. 4.34.2 is installed: the "
            "bound admits it on the v4.32.0 reading, re-read diff.go and provider.go#Check at "
            "the installed tag when next touching these rules.",
        ),
        Upstream(
            distribution="pulumi_docker",
            read="pulumi/pulumi-docker@v5.1.0, bridging "
            "kreuzwerker/terraform-provider-docker@v4.5.0 "
            "through pulumi/pulumi-terraform-bridge@v3.136.0",
            installed="5.2.0",
            below="5.3",
            note="Verified against v5.1.0 and the provider it bridges, kreuzwerker v4.5.0. 5.2.0 "
            "is installed and bridges a newer kreuzwerker (it adds `deviceCgroupRules`): inputs "
            "unknown to v4.5.0 are treated as forcing replacement, as every other ForceNew one.",
        ),
        Upstream(
            distribution="pulumi_random",
            read="pulumi/pulumi-random@v4.21.1, bridging "
            "hashicorp/terraform-provider-random@v3.9.0 (commit f8d869dc98d9)",
            installed="4.21.4",
            below="4.22",
            note="Verified against v4.21.1; 4.21.4 is installed (patch releases of the bridge).",
        ),
    )
}
"""By distribution name: what each rule's citation was read at."""
