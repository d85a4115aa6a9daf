"""Analyze calls spread over several pack processes, one per core: the engine's Analyze calls
are independent of each other (one resource each), so N packs answer them up to N times as
fast. AnalyzeStack, which must see the whole stack, goes to one more pack, which gets it as soon
as the last resource is read, while the others still answer Analyze calls. The packs are started
by `early.packs_for_manifests` and made ready by `pack.starting_policy_pack`, as a single pack
is."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from infra.offline.analyzer import (
    Diagnostic,
    PolicyPackProcess,
    Resource,
    analyze_spread,
    load_pack_config,
)
from infra.offline.check.pack import AnalyzeAll, starting_policy_pack
from infra.offline.launch import StartedPack


@contextmanager
def starting_policy_packs(
    stack: str, started: Sequence[StartedPack]
) -> Iterator[Callable[[], list[PolicyPackProcess]]]:
    """The packs `started` (by `early.packs_for_manifests`), each getting ready in the
    background; yields a call that waits until all of them serve. Every pack is stopped on the
    way out, whatever happens."""
    with ExitStack() as stack_packs:
        readies = [
            stack_packs.enter_context(starting_policy_pack(stack, started=pack)) for pack in started
        ]
        yield lambda: [ready() for ready in readies]


def spread(
    packs: Sequence[PolicyPackProcess], config: Path | None, stack_pack: PolicyPackProcess
) -> AnalyzeAll:
    """An `analyze_all` over `packs`: each resource's calls on whichever has room first, and
    AnalyzeStack over all of them on `stack_pack` (`analyzer.analyze_spread`). `pack.analyze`
    configures the first pack; the others get the same Configure here. Results come back in
    the order of the resources."""

    def analyze_all(
        resources: Iterable[Resource], *, remediate: bool = True
    ) -> tuple[list[tuple[Resource, list[Diagnostic]]], list[Diagnostic]]:
        raw = load_pack_config(config) if config is not None else None
        for other in [*packs[1:], stack_pack]:
            other.info()
            other.configure(raw)
        return analyze_spread(packs, resources, stack_pack=stack_pack, remediate=remediate)

    return analyze_all
