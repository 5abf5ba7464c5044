# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small IAM policy evaluator for role sessions: identity policies ∩ session policies.

Pure Python, no I/O. It follows the IAM User Guide; the pages are named in the comments by their
file name under IAM/latest/UserGuide/:

- reference_policies_evaluation-logic (and ..._policy-eval-denyallow): explicit deny in any policy
  wins; otherwise the identity-based policies must allow, a permissions boundary (when the role has
  one) must allow, and session policies (when the session has any) must allow.
- access_policies.html#policies_session: the session's permissions are the intersection of the role's
  identity-based policies and the session policies (inline ``Policy`` plus managed ``PolicyArns``);
  a session without session policies keeps the role's permissions.
- reference_policies_elements_action / _notaction / _resource / _notresource: case-insensitive
  actions, case-sensitive resources, ``*`` and ``?`` wildcards.
- reference_policies_elements_condition_operators: operators, ``...IfExists``, ``Null``; a key absent
  from the request makes a condition false, except that negated operators (StringNotEquals,
  NotIpAddress, ...) are then true.
- reference_policies_condition-logic-multiple-context-keys-or-values: several operators or keys are
  ANDed, several values of one key are ORed; ``ForAllValues:`` / ``ForAnyValue:`` for multivalued keys.
- reference_policies_variables: ``${key}`` in Resource and condition values (Version 2012-10-17 only).

Why our own code: no maintained Python library evaluates requests against session policies with
conditions (policyuniverse parses and expands; parliament and iam-policy-validator lint;
principalmapper's simulator is AGPL, unmaintained since 2022 and has no session policies;
cloud-copilot/iam-simulate is TypeScript and lists session policies as "coming soon").
"""
from __future__ import annotations

import datetime
import enum
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

ContextValue = str | Sequence[str]


class PolicyError(ValueError):
    """The policy document is malformed; the message names the policy, the problem and the fix."""


class Decision(enum.Enum):
    ALLOW = "allow"
    IMPLICIT_DENY = "implicit deny"
    EXPLICIT_DENY = "explicit deny"


class PolicyType(enum.Enum):
    """The policy types of a role session, as AWS names them in access-denied messages
    (troubleshoot_access-denied): (with an explicit deny in ..., because no ... allows)."""

    IDENTITY = ("an identity-based policy", "identity-based policy")
    PERMISSIONS_BOUNDARY = ("a permissions boundary", "permissions boundary")
    SESSION = ("a session policy", "session policy")


@dataclass(frozen=True)
class NamedPolicy:
    """A policy document (dict or JSON text) with the name that error messages show."""

    name: str
    document: Mapping[str, Any] | str


@dataclass(frozen=True)
class Request:
    """What AWS calls the request context: one action on one resource plus condition keys.

    Condition key names are case-insensitive (AWS documents them so); values are strings or, for
    multivalued keys such as aws:TagKeys, sequences of strings.
    """

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    def lookup(self, key: str) -> list[str] | None:
        wanted = key.lower()
        for name, value in self.context.items():
            if name.lower() == wanted:
                return [value] if isinstance(value, str) else list(value)
        return None


@dataclass(frozen=True)
class Result:
    decision: Decision
    policy_type: PolicyType | None = None  # the type that denied (None when allowed)
    policy_name: str | None = None  # the policy whose Deny statement matched
    sid: str | None = None

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW

    def reason(self, action: str) -> str:
        """The tail AWS puts after "is not authorized to perform: A on resource: R"."""
        if self.decision is Decision.EXPLICIT_DENY:
            return f"with an explicit deny in {self.policy_type.value[0]}"
        if self.decision is Decision.IMPLICIT_DENY:
            return f"because no {self.policy_type.value[1]} allows the {action} action"
        return ""


def evaluate(
    request: Request,
    identity_policies: Sequence[NamedPolicy],
    session_policies: Sequence[NamedPolicy] | None = None,
    permissions_boundary: NamedPolicy | None = None,
) -> Result:
    """Decide one request of a role session as AWS does within one account.

    ``session_policies=None`` means the session was created without session policies; an empty
    sequence is treated the same way (AWS has no "empty session policy" state).
    Resource-based policies, SCPs and RCPs are outside this evaluator.
    """
    layers: list[tuple[PolicyType, Sequence[NamedPolicy]]] = [(PolicyType.IDENTITY, identity_policies)]
    if permissions_boundary is not None:
        layers.append((PolicyType.PERMISSIONS_BOUNDARY, [permissions_boundary]))
    if session_policies:
        layers.append((PolicyType.SESSION, session_policies))

    allowed_by: dict[PolicyType, bool] = {}
    for policy_type, policies in layers:
        allowed_by[policy_type] = False
        for policy in policies:
            for sid, effect in _matching_statements(policy, request):
                if effect == "Deny":
                    return Result(Decision.EXPLICIT_DENY, policy_type, policy.name, sid)
                allowed_by[policy_type] = True
    for policy_type, _ in layers:
        if not allowed_by[policy_type]:
            return Result(Decision.IMPLICIT_DENY, policy_type)
    return Result(Decision.ALLOW)


def load_document(policy: NamedPolicy) -> dict[str, Any]:
    document = policy.document
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise PolicyError(f"policy {policy.name!r} is not valid JSON ({exc}); fix the document") from None
    if not isinstance(document, Mapping) or "Statement" not in document:
        raise PolicyError(f"policy {policy.name!r} has no Statement; a policy is {{\"Version\": ..., \"Statement\": [...]}}")
    return dict(document)


def _matching_statements(policy: NamedPolicy, request: Request) -> Iterable[tuple[str | None, str]]:
    document = load_document(policy)
    variables = document.get("Version") == "2012-10-17"  # policy variables need this version
    statements = document["Statement"]
    if isinstance(statements, Mapping):
        statements = [statements]
    for index, statement in enumerate(statements):
        where = f"policy {policy.name!r} statement {statement.get('Sid', index)!r}" if isinstance(statement, Mapping) \
            else f"policy {policy.name!r} statement {index}"
        if not isinstance(statement, Mapping):
            raise PolicyError(f"{where} is not an object")
        effect = statement.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"{where}: Effect must be \"Allow\" or \"Deny\", not {effect!r}")
        if "Principal" in statement or "NotPrincipal" in statement:
            raise PolicyError(f"{where}: identity-based and session policies take no Principal; remove it")
        if (
            _element_matches(statement, "Action", "NotAction", where, lambda p: _action_matches(p, request.action))
            and _element_matches(statement, "Resource", "NotResource", where,
                                 lambda p: _resource_matches(p, request, variables))
            and _conditions_match(statement.get("Condition", {}), request, variables, where)
        ):
            yield statement.get("Sid"), effect


def _element_matches(statement: Mapping, positive: str, negative: str, where: str,
                     matches: Callable[[str], bool]) -> bool:
    if (positive in statement) == (negative in statement):
        raise PolicyError(f"{where}: exactly one of {positive} / {negative} is required")
    name = positive if positive in statement else negative
    patterns = _string_list(statement[name], f"{where}: {name}")
    hit = any(matches(p) for p in patterns)
    return hit if name == positive else not hit


def _string_list(value: Any, where: str) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise PolicyError(f"{where} must be a string or a list of strings")
    return values


# --- matching -------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}


def _wildcard_regex(pattern: str, request: Request | None, flags: int = 0, wildcards: bool = True) -> re.Pattern | None:
    """Regex for an IAM pattern; None when a policy variable has no value (then nothing matches).

    Substituted variable values are literal text: a ``*`` inside a user name is no wildcard.
    ``${*}``, ``${?}``, ``${$}`` stand for the literal characters (reference_policies_variables).
    """
    parts: list[str] = []
    position = 0
    for match in (_VARIABLE.finditer(pattern) if request is not None else ()):
        parts.append(_glob_to_regex(pattern[position:match.start()], wildcards))
        inner = match.group(1)
        name, _, default = inner.partition(",")
        if name.strip() in _SPECIAL:
            parts.append(re.escape(_SPECIAL[name.strip()]))
        else:
            values = request.lookup(name.strip())
            if values and len(values) == 1:
                parts.append(re.escape(values[0]))
            elif default.strip().startswith("'") and default.strip().endswith("'") and len(default.strip()) >= 2:
                parts.append(re.escape(default.strip()[1:-1]))
            else:
                return None
        position = match.end()
    parts.append(_glob_to_regex(pattern[position:], wildcards))
    return re.compile("".join(parts), flags | re.DOTALL)


def _glob_to_regex(text: str, wildcards: bool) -> str:
    if not wildcards:
        return re.escape(text)
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)


def _action_matches(pattern: str, action: str) -> bool:
    regex = _wildcard_regex(pattern, None, re.IGNORECASE)
    return regex.fullmatch(action) is not None


def _resource_matches(pattern: str, request: Request, variables: bool) -> bool:
    if pattern == "*":
        return True
    regex = _wildcard_regex(pattern, request if variables else None)
    return regex is not None and regex.fullmatch(request.resource) is not None


def _arn_matches(pattern: str, value: str, request: Request, variables: bool) -> bool:
    """ArnLike/ArnEquals: each of the six colon-separated ARN parts is matched on its own."""
    if pattern == "*":
        return True
    pattern_parts = pattern.split(":", 5)
    value_parts = value.split(":", 5)
    if len(pattern_parts) != 6 or len(value_parts) != 6:
        return False
    for part, actual in zip(pattern_parts, value_parts):
        regex = _wildcard_regex(part, request if variables else None)
        if regex is None or regex.fullmatch(actual) is None:
            return False
    return True


# --- conditions -----------------------------------------------------------------------------------

def _parse_number(text: str) -> float:
    return float(text)


def _parse_date(text: str) -> datetime.datetime:
    """ISO 8601 (with or without time / zone) or epoch seconds, as AWS accepts for Date operators."""
    if re.fullmatch(r"-?\d+(\.\d+)?", text.strip()):
        return datetime.datetime.fromtimestamp(float(text), tz=datetime.timezone.utc)
    parsed = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def _parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text.strip(), strict=False)


def _compare(parse: Callable[[str], Any], test: Callable[[Any, Any], bool]):
    def match(actual: str, expected: str, request: Request, variables: bool) -> bool:
        try:
            actual_value = parse(actual)
        except ValueError:
            return False  # a request value of the wrong type matches nothing
        return test(actual_value, parse(expected))
    return match


def _string_like(actual: str, expected: str, request: Request, variables: bool) -> bool:
    regex = _wildcard_regex(expected, request if variables else None)
    return regex is not None and regex.fullmatch(actual) is not None


def _string_equals(actual: str, expected: str, request: Request, variables: bool, flags: int = 0) -> bool:
    regex = _wildcard_regex(expected, request if variables else None, flags, wildcards=False)
    return regex is not None and regex.fullmatch(actual) is not None


def _ip_in(actual: str, expected: str, request: Request, variables: bool) -> bool:
    try:
        address = ipaddress.ip_address(actual.strip())
    except ValueError:
        return False
    network = _parse_network(expected)
    return address.version == network.version and address in network


# Positive base operators; the negated operator of each is listed in _NEGATIONS.
_OPERATORS: dict[str, Callable[[str, str, Request, bool], bool]] = {
    "StringEquals": _string_equals,
    "StringEqualsIgnoreCase": lambda a, e, r, v: _string_equals(a, e, r, v, re.IGNORECASE),
    "StringLike": _string_like,
    "NumericEquals": _compare(_parse_number, lambda a, e: a == e),
    "NumericLessThan": _compare(_parse_number, lambda a, e: a < e),
    "NumericLessThanEquals": _compare(_parse_number, lambda a, e: a <= e),
    "NumericGreaterThan": _compare(_parse_number, lambda a, e: a > e),
    "NumericGreaterThanEquals": _compare(_parse_number, lambda a, e: a >= e),
    "DateEquals": _compare(_parse_date, lambda a, e: a == e),
    "DateLessThan": _compare(_parse_date, lambda a, e: a < e),
    "DateLessThanEquals": _compare(_parse_date, lambda a, e: a <= e),
    "DateGreaterThan": _compare(_parse_date, lambda a, e: a > e),
    "DateGreaterThanEquals": _compare(_parse_date, lambda a, e: a >= e),
    "Bool": lambda a, e, r, v: a.lower() == e.lower(),
    "IpAddress": _ip_in,
    "ArnEquals": lambda a, e, r, v: _arn_matches(e, a, r, v),
    "ArnLike": lambda a, e, r, v: _arn_matches(e, a, r, v),
}
_NEGATIONS = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "NotIpAddress": "IpAddress",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}
# Policy values are checked when the policy is read, so that a typo fails loudly instead of never matching.
_POLICY_VALUE_CHECKS: dict[str, Callable[[str], Any]] = {
    "Numeric": _parse_number, "Date": _parse_date, "IpAddress": _parse_network,
}


def _conditions_match(condition: Any, request: Request, variables: bool, where: str) -> bool:
    if not isinstance(condition, Mapping):
        raise PolicyError(f"{where}: Condition must be an object {{operator: {{key: values}}}}")
    for operator, keys in condition.items():
        if not isinstance(keys, Mapping):
            raise PolicyError(f"{where}: Condition operator {operator} must map keys to values")
        for key, values in keys.items():
            expected = _condition_values(values, f"{where}: Condition {operator} {key}")
            if not _condition_matches(operator, key, expected, request, variables, where):
                return False
    return True


def _condition_values(values: Any, where: str) -> list[str]:
    values = values if isinstance(values, list) else [values]
    if not values or not all(isinstance(v, (str, bool, int, float)) for v in values):
        raise PolicyError(f"{where}: values must be strings (or booleans / numbers)")
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in values]


def _condition_matches(operator: str, key: str, expected: list[str], request: Request, variables: bool,
                       where: str) -> bool:
    set_operator, _, base = operator.rpartition(":")
    if set_operator not in ("", "ForAllValues", "ForAnyValue"):
        raise PolicyError(f"{where}: unknown set operator {set_operator!r}; use ForAllValues or ForAnyValue")
    actual = request.lookup(key)

    if base == "Null":
        if set_operator:
            raise PolicyError(f"{where}: Null takes no ForAllValues/ForAnyValue qualifier")
        if any(v.lower() not in ("true", "false") for v in expected):
            raise PolicyError(f"{where}: Null takes \"true\" (key absent) or \"false\" (key present)")
        absent = not actual
        return any((v.lower() == "true") == absent for v in expected)

    if_exists = base.endswith("IfExists")
    if if_exists:
        base = base[: -len("IfExists")]
    negated = base in _NEGATIONS
    positive = _NEGATIONS.get(base, base)
    test = _OPERATORS.get(positive)
    if test is None:
        raise PolicyError(f"{where}: unknown condition operator {operator!r} (see the IAM condition operators reference)")
    for prefix, check in _POLICY_VALUE_CHECKS.items():
        if positive.startswith(prefix):
            for value in expected:
                try:
                    check(value)
                except ValueError:
                    raise PolicyError(f"{where}: {value!r} is not a valid value for {operator}") from None

    def value_matches(value: str) -> bool:
        hit = any(test(value, e, request, variables) for e in expected)
        return not hit if negated else hit

    if set_operator == "ForAllValues":
        return all(value_matches(v) for v in actual or [])  # true for an absent or empty key
    if set_operator == "ForAnyValue":
        return any(value_matches(v) for v in actual or [])  # false for an absent or empty key
    if actual is None:
        return if_exists or negated
    hit = any(test(v, e, request, variables) for v in actual for e in expected)
    return not hit if negated else hit
