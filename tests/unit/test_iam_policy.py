"""docs/iam-policy.json, the controller's least-privilege IAM policy, allows exactly the AWS API calls the
collection's AWS-side modules make (found in their source), plus the permissions AWS checks on top of some
calls, and nothing else: no wildcard actions.
"""
import ast
import json
import re
from pathlib import Path

import botocore.session

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "docs" / "iam-policy.json"
AWS_MODULE_UTILS = ROOT / "plugins" / "module_utils" / "_aws.py"

# IAM action prefixes of the botocore services the modules use.
SERVICES = {"rolesanywhere": "rolesanywhere", "iam": "iam", "acm-pca": "acm-pca", "sts": "sts"}
# Permissions AWS evaluates for a call besides the call's own action.
ALSO_CHECKED = {
    "rolesanywhere:CreateProfile": {"iam:PassRole"},       # the profile's roles are passed to Roles Anywhere
    "rolesanywhere:UpdateProfile": {"iam:PassRole"},
    "rolesanywhere:CreateTrustAnchor": {"rolesanywhere:TagResource"},  # tags given at creation
    "iam:CreateRole": {"iam:TagRole"},
}
NO_PERMISSION_NEEDED = {"sts:GetCallerIdentity"}  # AWS answers it for any identity


def aws_modules():
    """The modules built on AWSModule, with the botocore services each creates clients for."""
    found = {}
    for path in sorted((ROOT / "plugins" / "modules").glob("*.py")):
        source = path.read_text()
        if "AWSModule(" not in source:
            continue
        own = re.search(r'AWSModule\(\s*"([a-z-]+)"', source) or re.search(r'service="([a-z-]+)"', source)
        services = set(re.findall(r'\.client\(\s*"([a-z-]+)"', source))
        if own:
            services.add(own.group(1))
        if re.search(r"\.client\(\s*\)", source):
            services.add("rolesanywhere")
        found[path] = services
    return found


def names_called(path):
    """Method names called and string constants (paginated operations) in a source file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            names.add(node.func.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            names.add(node.value)
    return names


def actions_called():
    session = botocore.session.get_session()
    models = {name: session.get_service_model(name) for name in SERVICES}
    operations = {name: {to_snake(op): op for op in model.operation_names} for name, model in models.items()}
    modules = aws_modules()
    assert modules, "no AWS-side modules found"
    all_services = set().union(*modules.values())
    actions = set()
    for path, services in [*modules.items(), (AWS_MODULE_UTILS, all_services)]:
        called = names_called(path)
        for service in services:
            actions |= {f"{SERVICES[service]}:{op}" for snake, op in operations[service].items() if snake in called}
    return actions


def to_snake(operation):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", operation)).lower()


def policy_actions():
    policy = json.loads(POLICY.read_text())
    assert policy["Version"] == "2012-10-17"
    actions = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement, statement
        listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in listed), f"wildcard action in {statement}"
        actions |= set(listed)
    return actions


def test_the_policy_allows_exactly_the_calls_the_modules_make():
    called = actions_called()
    assert {"rolesanywhere:CreateTrustAnchor", "iam:CreateRole", "acm-pca:IssueCertificate",
            "rolesanywhere:ImportCrl"} <= called  # the scan sees the calls
    needed = (called - NO_PERMISSION_NEEDED).union(*(ALSO_CHECKED.get(action, set()) for action in called))
    granted = policy_actions()
    assert not needed - granted, f"the policy misses {sorted(needed - granted)}"
    assert not granted - needed, f"the policy grants more than the modules use: {sorted(granted - needed)}"


def test_pass_role_only_to_roles_anywhere():
    policy = json.loads(POLICY.read_text())
    [statement] = [s for s in policy["Statement"] if "iam:PassRole" in s["Action"]]
    assert statement["Action"] == ["iam:PassRole"]
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "rolesanywhere.amazonaws.com"}}
