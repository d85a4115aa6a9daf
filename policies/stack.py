"""Stack policies relating resources to each other: every workload is selected by a
NetworkPolicy, and every replicated workload by a PodDisruptionBudget."""

from __future__ import annotations

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


def _selected_by(
    workload: _Workload, selectors: list[tuple[Resource, Any]], findings: Findings
) -> bool | None:
    """True if any (resource, selector) in the workload's namespace selects it."""
    verdicts = [
        _combine(
            _same_namespace(workload.namespace, _namespace(owner, _Scoped(findings, owner))),
            selects(selector, workload.labels),
        )
        for owner, selector in selectors
    ]
    if True in verdicts:
        return True
    return None if None in verdicts or workload.labels is UNKNOWN else False


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
    selectors = [
        (r, _selector(r, "podSelector", findings)) for r in resources if r.type in NETWORK_POLICIES
    ]
    for workload in _workloads(resources, findings):
        if reporter.exempt(workload.resource):
            continue
        verdict = _selected_by(workload, selectors, findings)
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


def _hpa_min_replicas(workload: _Workload, hpas: list[Resource], findings: Findings) -> Any:
    """The highest minReplicas of HPAs scaling `workload`: an int, or UNKNOWN."""
    highest, undetermined = 1, False
    metadata = workload.resource.props.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    for hpa in hpas:
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
    selectors = [(r, _selector(r, "selector", findings)) for r in resources if r.type in PDBS]
    hpas = [r for r in resources if r.type in HPAS]
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
        verdict = _selected_by(workload, selectors, findings)
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
        check=check_network_policy_coverage,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    stack_policy(
        name="k8s-pdb-coverage",
        description="Every Kubernetes workload with more than one replica must be selected by "
        "a PodDisruptionBudget.",
        check=check_pdb_coverage,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
]
