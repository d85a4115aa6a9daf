"""Stack policies relating resources to each other: every workload is selected by a
NetworkPolicy, and every replicated workload by a PodDisruptionBudget."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from _framework import Resource, StackReporter, stack_policy
from _values import INT, MALFORMED, UNKNOWN, Findings, is_unknown, known
from _workloads import (
    HPAS,
    K8S_WORKLOADS,
    NETWORK_POLICIES,
    PDBS,
    REPLICATED_WORKLOADS,
    kind_of,
    label,
    pod_labels,
)
from pulumi_policy import EnforcementLevel


@dataclass(frozen=True)
class _Workload:
    resource: Resource
    namespace: Any
    """A string, or UNKNOWN."""
    labels: Any
    """The pod template's labels: a dict, or UNKNOWN."""


class _Scoped(Findings):
    """Findings whose paths name the resource they belong to (stack checks see many)."""

    def __init__(self, parent: Findings, resource: Resource) -> None:
        super().__init__(label(resource.type, resource.name))
        self._parent = parent
        self._prefix = resource.name

    def fail(self, message: str) -> None:
        self._parent.fail(message)

    def unknown(self, path: str) -> None:
        self._parent.unknown(f"{self._prefix}: {path}")


def _namespace(resource: Resource, findings: Findings) -> Any:
    metadata = findings.field(resource.props, "metadata", "", dict)
    namespace = findings.field(metadata, "namespace", "metadata", str)
    if namespace is None or namespace == "":
        return "default"
    return namespace if isinstance(namespace, str) else UNKNOWN


def _workloads(resources: list[Resource], findings: Findings) -> Iterator[_Workload]:
    for resource in resources:
        if resource.type not in K8S_WORKLOADS:
            continue
        scoped = _Scoped(findings, resource)
        labels = pod_labels(resource.type, resource.props, scoped)
        if resource.type == "kubernetes:core/v1:Pod":
            metadata = scoped.field(resource.props, "metadata", "", dict)
            labels = scoped.field(metadata, "labels", "metadata", dict)
        if labels is MALFORMED:
            continue  # already reported; nothing to match against
        if labels is None:
            labels = {}
        yield _Workload(resource=resource, namespace=_namespace(resource, scoped), labels=labels)


def selects(selector: Any, labels: Any) -> bool | None:
    """Whether a LabelSelector selects pods with `labels`; None when values are unknown."""
    if not isinstance(selector, Mapping):
        return None if is_unknown(selector) else False
    if not isinstance(labels, Mapping):
        return None
    undetermined = False
    match_labels = selector.get("matchLabels") or {}
    if is_unknown(match_labels):
        return None
    if not isinstance(match_labels, Mapping):
        return False
    for key, wanted in match_labels.items():
        actual = labels.get(key)
        if is_unknown(wanted) or is_unknown(actual):
            undetermined = True
        elif actual != wanted:
            return False
    expressions = selector.get("matchExpressions") or []
    if is_unknown(expressions):
        return None
    for expression in expressions if isinstance(expressions, list) else [None]:
        if not isinstance(expression, Mapping):
            return False
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        actual = labels.get(key) if isinstance(key, str) else None
        if any(is_unknown(v) for v in (key, operator, actual, values)):
            undetermined = True
            continue
        present = isinstance(key, str) and key in labels
        values = values if isinstance(values, list) else []
        outcome = {
            "In": present and actual in values,
            "NotIn": not present or actual not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(operator)
        if not outcome:
            return False
    return None if undetermined else True


def _same_namespace(a: Any, b: Any) -> bool | None:
    if a is UNKNOWN or b is UNKNOWN:
        return None
    return a == b


def _combine(*verdicts: bool | None) -> bool | None:
    if False in verdicts:
        return False
    return None if None in verdicts else True


class _Selectors:
    """The selectors of one kind (NetworkPolicy podSelectors, PDB selectors) indexed so that a
    workload is only matched against those that can select it: its namespace's, anchored on
    one of its labels. A selector left out of the candidates has a known namespace or a known
    matchLabels pair that differs from the workload's, so it cannot select it. Each selector is
    anchored on its rarest known pair among its namespace's selectors, never on the order of
    its matchLabels (a protobuf Struct does not keep it): a label most selectors share, such as
    `app.kubernetes.io/part-of`, would put them all in one bucket and make the check quadratic
    in a stack of thousands of workloads."""

    def __init__(self, selectors: list[tuple[Resource, Any]], findings: Findings) -> None:
        self._anywhere: list[Any] = []
        """Selectors whose namespace is unknown."""
        self._unanchored: dict[str, list[Any]] = {}
        """Per namespace: selectors without a known matchLabels pair (empty, expressions...)."""
        self._anchored: dict[tuple[str, str, str], list[Any]] = {}
        """Per (namespace, label, value) of the selector's rarest known matchLabels pair."""
        self._by_key: dict[tuple[str, str], list[Any]] = {}
        """The anchored selectors again, per (namespace, label), for unknown label values."""
        self._all: dict[str, list[Any]] = {}
        placed: list[tuple[str, Any, list[tuple[str, str]]]] = []
        shared: Counter[tuple[str, str, str]] = Counter()
        for owner, selector in selectors:
            namespace = _namespace(owner, _Scoped(findings, owner))
            if namespace is UNKNOWN:
                self._anywhere.append(selector)
                continue
            self._all.setdefault(namespace, []).append(selector)
            pairs = _known_pairs(selector)
            shared.update((namespace, key, value) for key, value in pairs)
            placed.append((namespace, selector, pairs))
        for namespace, selector, pairs in placed:
            if not pairs:
                self._unanchored.setdefault(namespace, []).append(selector)
                continue
            key, value = min(pairs, key=lambda pair: (shared[(namespace, *pair)], pair))
            self._anchored.setdefault((namespace, key, value), []).append(selector)
            self._by_key.setdefault((namespace, key), []).append(selector)

    def candidates(self, workload: _Workload) -> Iterator[tuple[Any, bool | None]]:
        """(selector, whether it is in the workload's namespace) for every selector that may
        select the workload."""
        for selector in self._anywhere:
            yield selector, None
        namespace, labels = workload.namespace, workload.labels
        if namespace is UNKNOWN:
            for selectors in self._all.values():
                for selector in selectors:
                    yield selector, None
            return
        if not isinstance(labels, Mapping):
            for selector in self._all.get(namespace, []):
                yield selector, True
            return
        for selector in self._unanchored.get(namespace, []):
            yield selector, True
        for key, value in labels.items():
            if is_unknown(value):
                found = self._by_key.get((namespace, key), [])
            else:
                found = self._anchored.get((namespace, key, value), [])
            for selector in found:
                yield selector, True


def _known_pairs(selector: Any) -> list[tuple[str, str]]:
    """The selector's matchLabels pairs whose label and value are both known strings."""
    if not isinstance(selector, Mapping):
        return []
    match_labels = selector.get("matchLabels")
    if not isinstance(match_labels, Mapping):
        return []
    return [
        (key, value)
        for key, value in match_labels.items()
        if isinstance(key, str) and isinstance(value, str) and not is_unknown(value)
    ]


def _selected_by(workload: _Workload, selectors: _Selectors) -> bool | None:
    """True if any selector in the workload's namespace selects it."""
    undetermined = workload.labels is UNKNOWN
    for selector, same_namespace in selectors.candidates(workload):
        verdict = _combine(same_namespace, selects(selector, workload.labels))
        if verdict is True:
            return True
        undetermined = undetermined or verdict is None
    return None if undetermined else False


def _describe(workload: _Workload) -> str:
    labels = workload.labels if isinstance(workload.labels, Mapping) else {}
    shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "no labels"
    namespace = workload.namespace if isinstance(workload.namespace, str) else "?"
    where = label(workload.resource.type, workload.resource.name)
    return f"{where} (namespace '{namespace}', pod labels {shown})"


def _selector(resource: Resource, key: str, findings: Findings) -> Any:
    scoped = _Scoped(findings, resource)
    spec = scoped.field(resource.props, "spec", "", dict)
    return scoped.field(spec, key, "spec", dict)


def check_network_policy_coverage(
    resources: list[Resource], config: Mapping[str, Any], reporter: StackReporter
) -> None:
    findings = reporter.findings
    selectors = _Selectors(
        [
            (r, _selector(r, "podSelector", findings))
            for r in resources
            if r.type in NETWORK_POLICIES
        ],
        findings,
    )
    for workload in _workloads(resources, findings):
        if reporter.exempt(workload.resource):
            continue
        verdict = _selected_by(workload, selectors)
        if verdict is None:
            findings.unknown(f"{workload.resource.name}: NetworkPolicy selection")
        elif verdict is False:
            reporter.fail(
                workload.resource,
                f"{_describe(workload)} is selected by no NetworkPolicy, so all traffic to and "
                "from its pods is allowed. Add a NetworkPolicy in its namespace whose "
                "spec.podSelector.matchLabels is a subset of these labels (an empty "
                "podSelector selects every pod of the namespace).",
            )


class _HpaIndex:
    """HPAs by the kind and name they scale; those with an unknown target name apply to all."""

    def __init__(self, hpas: list[Resource]) -> None:
        self._by_target: dict[tuple[Any, str], list[Resource]] = {}
        self._unknown_name: list[Resource] = []
        for hpa in hpas:
            spec = hpa.props.get("spec")
            target = spec.get("scaleTargetRef") if isinstance(spec, Mapping) else None
            if not isinstance(target, Mapping):
                self._unknown_name.append(hpa)  # reported as malformed when checked
            elif isinstance(target.get("name"), str) and not is_unknown(target.get("name")):
                self._by_target.setdefault((target.get("kind"), target["name"]), []).append(hpa)
            else:
                self._unknown_name.append(hpa)

    def scaling(self, resource: Resource) -> list[Resource]:
        """HPAs that may scale `resource` (same kind and name, or an unknown name)."""
        metadata = resource.props.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        if not isinstance(name, str) or is_unknown(name):
            return [h for found in self._by_target.values() for h in found] + self._unknown_name
        return self._by_target.get((kind_of(resource.type), name), []) + self._unknown_name


def _hpa_min_replicas(workload: _Workload, hpas: _HpaIndex, findings: Findings) -> Any:
    """The highest minReplicas of HPAs scaling `workload`: an int, or UNKNOWN."""
    highest, undetermined = 1, False
    metadata = workload.resource.props.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    for hpa in hpas.scaling(workload.resource):
        scoped = _Scoped(findings, hpa)
        spec = scoped.field(hpa.props, "spec", "", dict)
        target = scoped.field(spec, "scaleTargetRef", "spec", dict)
        if not isinstance(target, Mapping) or target.get("kind") != kind_of(workload.resource.type):
            continue
        same_name = (
            None
            if is_unknown(name) or is_unknown(target.get("name"))
            else name == target.get("name")
        )
        matches = _combine(_same_namespace(workload.namespace, _namespace(hpa, scoped)), same_name)
        minimum = scoped.field(spec, "minReplicas", "spec", INT)
        if matches is False:
            continue
        if matches is None or not known(minimum):
            undetermined = True
        elif isinstance(minimum, int):
            highest = max(highest, minimum)
    return UNKNOWN if undetermined and highest <= 1 else highest


def check_pdb_coverage(
    resources: list[Resource], config: Mapping[str, Any], reporter: StackReporter
) -> None:
    findings = reporter.findings
    selectors = _Selectors(
        [(r, _selector(r, "selector", findings)) for r in resources if r.type in PDBS], findings
    )
    hpas = _HpaIndex([r for r in resources if r.type in HPAS])
    for workload in _workloads(resources, findings):
        if workload.resource.type not in REPLICATED_WORKLOADS:
            continue
        scoped = _Scoped(findings, workload.resource)
        spec = scoped.field(workload.resource.props, "spec", "", dict)
        replicas = scoped.field(spec, "replicas", "spec", INT)
        if replicas is MALFORMED:
            continue
        replicas = 1 if replicas is None else replicas
        minimum = _hpa_min_replicas(workload, hpas, findings)
        count = max((v for v in (replicas, minimum) if isinstance(v, int)), default=1)
        if count <= 1:
            if not (isinstance(replicas, int) and isinstance(minimum, int)):
                findings.unknown(f"{workload.resource.name}: replica count")
            continue
        if reporter.exempt(workload.resource):
            continue
        verdict = _selected_by(workload, selectors)
        if verdict is None:
            findings.unknown(f"{workload.resource.name}: PodDisruptionBudget selection")
        elif verdict is False:
            reporter.fail(
                workload.resource,
                f"{_describe(workload)} runs {count} replicas but no PodDisruptionBudget "
                "selects its pods, so a node drain may evict them all at once. Add a "
                "PodDisruptionBudget in its namespace with spec.selector.matchLabels a subset "
                "of these labels and minAvailable: 1 (or maxUnavailable: 1).",
            )


POLICIES: Final = [
    stack_policy(
        name="k8s-network-policy-coverage",
        description="Every Kubernetes workload must be selected by a NetworkPolicy.",
        resource_types=K8S_WORKLOADS | NETWORK_POLICIES,
        check=check_network_policy_coverage,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    stack_policy(
        name="k8s-pdb-coverage",
        description="Every Kubernetes workload with more than one replica must be selected by "
        "a PodDisruptionBudget.",
        resource_types=K8S_WORKLOADS | PDBS | HPAS,
        check=check_pdb_coverage,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
]
