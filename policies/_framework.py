"""Builds the pack's policies from plain check functions, with the behaviour they all share.

Every policy built here:
- filters on the resource type first;
- honours and reports exemptions (see _exemptions);
- never raises: malformed input and its own bugs become violations, unknown values during
  preview become the SDK's advisory "can't be known during preview" note after all known
  fields have been checked.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from _exemptions import exempted_message, find_exemption, missing_reason_message
from _sdk import applies_to, per_call, report_advisory
from _values import Findings
from _values import plain as _plain
from _workloads import label
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError


@dataclass(frozen=True)
class Resource:
    """A resource as checks see it: plain camelCase properties and the policy's config."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    config: Mapping[str, Any]


plain = per_call(_plain)
"""Every policy of a call reads the same properties: unwrap them once per call."""

ResourceCheck = Callable[[Resource, Findings], None]
StackCheck = Callable[[list[Resource], Mapping[str, Any], "StackReporter"], None]


def _internal_error(subject: str, error: Exception) -> str:
    traceback.print_exc(file=sys.stderr)
    return (
        f"the policy failed while checking {subject} ({type(error).__name__}: {error}); "
        "this is a bug in the safeguard policy pack, report it with the resource definition."
    )


def _raise_unknowns(findings: Findings) -> None:
    """Ends the check with the SDK's own advisory note for values unknown during preview."""
    if not findings.unknown_paths:
        return
    paths = ", ".join(f".{p}" for p in findings.unknown_paths[:6])
    more = len(findings.unknown_paths) - 6
    if more > 0:
        paths += f" and {more} more"
    error = UnknownValueError(UNKNOWN_STRING_VALUE, [findings.unknown_paths[0]])
    error.message = (
        f"the value(s) at {paths} can't be known during preview; every other field was "
        "checked, and these will be checked when their values are known"
    )
    raise error


def resource_policy(
    *,
    name: str,
    description: str,
    resource_types: Collection[str],
    check: ResourceCheck,
    enforcement_level: EnforcementLevel,
    config_schema: PolicyConfigSchema | None = None,
) -> ResourceValidationPolicy:
    """A resource policy running `check` on resources of `resource_types`."""
    types = frozenset(resource_types)

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in types:
            return
        if args.resource_type.startswith("kubernetes:") and not args.props:
            # An object the program reads (a `get`) and does not create: its state keeps the
            # empty properties the `get` sent as inputs, which `pulumi policy analyze --file`
            # sends to Analyze. A registered object always carries apiVersion and kind.
            return
        findings = Findings(label(args.resource_type, args.name))
        try:
            props = plain(args.props)
            exemption = find_exemption(args.resource_type, props, name)
            if exemption is not None and exemption.valid:
                report_advisory(report_violation, exempted_message(exemption))
                return
            if exemption is not None and exemption.reason is None:
                findings.unknown(f"{exemption.where}.{exemption.key}")
            elif exemption is not None:
                findings.fail(f"{findings.subject}: {missing_reason_message(exemption)}")
            config = plain(args.get_config()) or {}
            check(Resource(args.resource_type, args.name, args.urn, props, config), findings)
        except Exception as error:
            findings.fail(_internal_error(findings.subject, error))
        for message in findings.violations:
            report_violation(message, None)
        _raise_unknowns(findings)

    return applies_to(
        ResourceValidationPolicy(
            name=name,
            description=description,
            validate=validate,
            enforcement_level=enforcement_level,
            config_schema=config_schema,
        ),
        types,
    )


class StackReporter:
    """Collects a stack policy's findings per resource URN, honouring exemptions."""

    def __init__(self, policy_name: str, report_violation: ReportViolation) -> None:
        self._policy = policy_name
        self._report = report_violation
        self.findings = Findings()

    def exempt(self, resource: Resource) -> bool:
        """True (and reported) if `resource` is validly exempted from this policy."""
        exemption = find_exemption(resource.type, resource.props, self._policy)
        if exemption is None:
            return False
        if exemption.valid:
            report_advisory(self._report, exempted_message(exemption), resource.urn)
            return True
        if exemption.reason is None:
            self.findings.unknown(f"{resource.name}: {exemption.where}.{exemption.key}")
        else:
            subject = label(resource.type, resource.name)
            self.fail(resource, f"{subject}: {missing_reason_message(exemption)}")
        return False

    def fail(self, resource: Resource, message: str) -> None:
        self._report(message, resource.urn or None)


def stack_policy(
    *,
    name: str,
    description: str,
    resource_types: Collection[str],
    check: StackCheck,
    enforcement_level: EnforcementLevel,
    config_schema: PolicyConfigSchema | None = None,
) -> StackValidationPolicy:
    """A stack policy running `check` over the stack's resources of `resource_types` (_sdk
    hands it only those where it can; the properties of the others are never read)."""
    types = frozenset(resource_types)

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [
            Resource(
                type=r.resource_type,
                name=r.name,
                urn=r.urn,
                props=props if isinstance(props := plain(r.props), Mapping) else {},
                config={},
            )
            for r in args.resources
            if r.resource_type in types
        ]
        reporter = StackReporter(name, report_violation)
        try:
            check(resources, plain(args.get_config()) or {}, reporter)
        except Exception as error:
            reporter.findings.fail(_internal_error("the stack", error))
        for message in reporter.findings.violations:
            report_violation(message, None)
        _raise_unknowns(reporter.findings)

    return applies_to(
        StackValidationPolicy(
            name=name,
            description=description,
            validate=validate,
            enforcement_level=enforcement_level,
            config_schema=config_schema,
        ),
        types,
    )
