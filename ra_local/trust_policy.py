"""Role trust-policy evaluation for the Roles Anywhere service principal.

Covers what Roles Anywhere trust policies use: Principal (Service / AWS "*"), Action / NotAction with
wildcards, Allow / Deny, and the String*, Arn* (+IfExists) and Null condition operators against
single-valued context keys (session tags as aws:PrincipalTag/... and aws:RequestTag/..., aws:SourceArn,
aws:SourceAccount).
"""
import fnmatch
import json
import re
from urllib.parse import unquote

SERVICE_PRINCIPAL = "rolesanywhere.amazonaws.com"
REQUIRED_ACTIONS = ("sts:AssumeRole", "sts:TagSession")


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _glob(pattern, value, ignore_case=False):
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _arn_like(pattern, value):
    pattern_parts, value_parts = pattern.split(":", 5), value.split(":", 5)
    if len(pattern_parts) != 6 or len(value_parts) != 6:
        return False
    return all(_glob(p, v) for p, v in zip(pattern_parts, value_parts))


# operator → (match(expected, actual), negated)
OPERATORS = {
    "StringEquals": (lambda e, a: e == a, False),
    "StringNotEquals": (lambda e, a: e == a, True),
    "StringEqualsIgnoreCase": (lambda e, a: e.lower() == a.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda e, a: e.lower() == a.lower(), True),
    "StringLike": (_glob, False),
    "StringNotLike": (_glob, True),
    "ArnEquals": (lambda e, a: e == a, False),
    "ArnNotEquals": (lambda e, a: e == a, True),
    "ArnLike": (_arn_like, False),
    "ArnNotLike": (_arn_like, True),
}


class UnsupportedCondition(Exception):
    pass


def _condition_holds(operator, key, expected, context):
    actual = context.get(key.lower())
    if operator == "Null":
        want_absent = str(_as_list(expected)[0]).lower() == "true"
        return (actual is None) == want_absent
    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator
    if base not in OPERATORS:
        raise UnsupportedCondition(operator)
    match, negated = OPERATORS[base]
    if actual is None:
        return if_exists or negated
    matched = any(match(str(e), actual) for e in _as_list(expected))
    return not matched if negated else matched


def _statement_conditions(statement, context):
    """(holds, first failing 'Operator key' or None)."""
    for operator, clauses in (statement.get("Condition") or {}).items():
        for key, expected in clauses.items():
            if not _condition_holds(operator, key, expected, context):
                return False, f"{operator} {key}"
    return True, None


def _principal_matches(statement):
    if "NotPrincipal" in statement:
        return False
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    if principal.get("AWS") == "*":
        return True
    return SERVICE_PRINCIPAL in _as_list(principal.get("Service", []))


def _action_matches(statement, action):
    if "NotAction" in statement:
        return not any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in _as_list(statement["NotAction"]))
    return any(_glob(p, action, ignore_case=True) for p in _as_list(statement.get("Action", [])))


def load_document(document):
    """IAM returns the document URL-encoded (raw API) or already decoded (boto3); accept both."""
    if isinstance(document, dict):
        return document
    text = document if document.lstrip().startswith("{") else unquote(document)
    return json.loads(text)


def evaluate(document, context):
    """None when the policy lets the Roles Anywhere service principal assume the role with these
    session tags, else a sentence naming the failed check. ``context`` keys are matched case-insensitively."""
    context = {k.lower(): v for k, v in context.items()}
    statements = _as_list(load_document(document).get("Statement", []))
    for action in REQUIRED_ACTIONS:
        allowed = False
        failures = []
        for statement in statements:
            if not _principal_matches(statement) or not _action_matches(statement, action):
                continue
            try:
                holds, failed = _statement_conditions(statement, context)
            except UnsupportedCondition as exc:
                return f"the trust policy uses condition operator {exc}, which this endpoint does not evaluate"
            if not holds:
                failures.append(failed)
                continue
            if statement.get("Effect") == "Deny":
                return f"the role's trust policy explicitly denies {action} to {SERVICE_PRINCIPAL}"
            if statement.get("Effect") == "Allow":
                allowed = True
        if not allowed:
            reason = f" (condition {', '.join(failures)} not met)" if failures else ""
            return f"the role's trust policy does not allow {SERVICE_PRINCIPAL} to perform {action}{reason}"
    return None
