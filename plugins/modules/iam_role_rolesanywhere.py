#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: iam_role_rolesanywhere
short_description: IAM role that IAM Roles Anywhere may assume, with certificate-based conditions
version_added: 0.1.0
description:
  - Creates, updates or deletes an IAM role whose trust policy lets the service principal
    C(rolesanywhere.amazonaws.com) call C(sts:AssumeRole), C(sts:TagSession) and C(sts:SetSourceIdentity).
  - The trust policy's conditions are built from options - C(ArnEquals aws:SourceArn) for the trust anchors,
    C(StringEquals aws:PrincipalTag/x509Subject/<RDN>) for subject fields (for example the OU),
    C(aws:PrincipalTag/x509Issuer/<RDN>), C(aws:PrincipalTag/x509SAN/<type>) and C(aws:SourceAccount).
  - Attaches managed policies. Idempotent by role name; check mode predicts the result without changing
    anything; diff shows the role before and after.
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
extends_documentation_fragment:
  - rolesanywhere.fleet.aws
  - rolesanywhere.fleet.aws.tags
  - rolesanywhere.fleet.attributes
  - rolesanywhere.fleet.attributes.aws_group
options:
  name:
    description: Name of the IAM role.
    type: str
    required: true
  state:
    description: C(present) creates or updates the role; C(absent) detaches its policies and deletes it.
    type: str
    choices: [present, absent]
    default: present
  path:
    description: IAM path of the role (set at creation only).
    type: str
    default: /
  description:
    description: Role description. Omit to leave it as it is.
    type: str
  max_session_duration:
    description:
      - Maximum session duration in seconds (3600..43200). It caps the duration a Roles Anywhere profile
        can give. Omit to leave it (new roles get 3600).
    type: int
  trust_anchor_arns:
    description:
      - Trust anchors allowed to vend sessions for this role (C(ArnEquals aws:SourceArn)).
      - Strongly recommended; without it any trust anchor of the account can use the role.
    type: list
    elements: str
    default: []
  x509_subject:
    description:
      - 'Required certificate subject fields, for example C({"OU": "Innovation"}) or C({"CN": ["web1", "web2"]}).
        Each becomes C(StringEquals aws:PrincipalTag/x509Subject/<key>).'
    type: dict
    default: {}
  x509_issuer:
    description: Required issuer fields, as C(StringEquals aws:PrincipalTag/x509Issuer/<key>).
    type: dict
    default: {}
  x509_san:
    description:
      - 'Required subject alternative names, for example C({"DNS": "web1.example.com"}), as C(StringEquals
        aws:PrincipalTag/x509SAN/<key>).'
    type: dict
    default: {}
  source_account:
    description: Account ID required as C(StringEquals aws:SourceAccount).
    type: str
  extra_conditions:
    description:
      - 'Further condition blocks merged into the trust statement, as in IAM JSON, for example
        C({"StringLike": {"aws:PrincipalTag/x509Subject/CN": "web*"}}).'
    type: dict
    default: {}
  managed_policy_arns:
    description: Managed policies to attach. Omit to leave the attached policies as they are.
    type: list
    elements: str
  purge_managed_policies:
    description: Detach managed policies not listed in O(managed_policy_arns).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Role for servers whose certificate says OU=Innovation, only through our trust anchor
  rolesanywhere.fleet.iam_role_rolesanywhere:
    name: fleet-innovation
    trust_anchor_arns:
      - "{{ trust_anchor_arn }}"
    x509_subject:
      OU: Innovation
    managed_policy_arns:
      - arn:aws:iam::aws:policy/AmazonS3FullAccess
    tags:
      owner: platform

- name: Remove the role
  rolesanywhere.fleet.iam_role_rolesanywhere:
    name: fleet-innovation
    state: absent
"""

RETURN = r"""
role:
  description: The role after the run (predicted in check mode; empty when absent).
  returned: always
  type: dict
  contains:
    arn:
      description: Role ARN (in check mode for a new role, predicted from the caller's account when STS answers).
      type: str
      sample: arn:aws:iam::123456789012:role/fleet-innovation
    name:
      description: Role name.
      type: str
    path:
      description: IAM path.
      type: str
    description:
      description: Role description.
      type: str
    max_session_duration:
      description: Maximum session duration in seconds.
      type: int
    assume_role_policy_document:
      description: The trust policy.
      type: dict
    managed_policy_arns:
      description: Attached managed policies, sorted.
      type: list
      elements: str
    tags:
      description: Tags.
      type: dict
error:
  description: The AWS error code and message when the module fails on an AWS call.
  returned: failure
  type: dict
"""

import urllib.parse

from ansible_collections.rolesanywhere.fleet.plugins.module_utils._aws import (
    TAGS_ARGSPEC,
    AWSError,
    AWSModule,
    Resource,
    canonical_policy,
    compare_tags,
    desired_tags,
    load_policy,
    policy_json,
    run_resource_module,
    tag_dict_to_list,
    tag_list_to_dict,
)

SERVICE_PRINCIPAL = "rolesanywhere.amazonaws.com"
TRUST_ACTIONS = ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]


def trust_policy(params):
    """The role's trust policy built from the module options."""
    conditions = {}
    if params["trust_anchor_arns"]:
        anchors = params["trust_anchor_arns"]
        conditions["ArnEquals"] = {"aws:SourceArn": anchors[0] if len(anchors) == 1 else anchors}
    equals = {}
    for field, prefix in (("x509_subject", "x509Subject"), ("x509_issuer", "x509Issuer"), ("x509_san", "x509SAN")):
        for key, value in params[field].items():
            equals[f"aws:PrincipalTag/{prefix}/{key}"] = value if isinstance(value, list) else str(value)
    if params["source_account"]:
        equals["aws:SourceAccount"] = params["source_account"]
    if equals:
        conditions["StringEquals"] = equals
    for operator, block in params["extra_conditions"].items():
        if not isinstance(block, dict):
            raise AWSError(f"extra_conditions.{operator} must be a dict of condition keys to values", "InvalidInput")
        conditions.setdefault(operator, {}).update(block)
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": SERVICE_PRINCIPAL},
        "Action": TRUST_ACTIONS,
    }
    if conditions:
        statement["Condition"] = conditions
    return load_policy({"Version": "2012-10-17", "Statement": [statement]}, "the generated trust policy")


class RolesAnywhereRole(Resource):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.iam = module.client("iam")

    def validate(self):
        duration = self.params["max_session_duration"]
        if duration is not None and not 3600 <= duration <= 43200:
            raise AWSError(
                f"max_session_duration={duration} is out of range: IAM allows 3600..43200 seconds", "ValidationError"
            )
        self.trust = trust_policy(self.params)
        for arn in self.params["managed_policy_arns"] or []:
            try:
                self.iam.get_policy(PolicyArn=arn)
            except AWSError as exc:
                if exc.code == "NoSuchEntity":
                    raise AWSError(
                        f"managed policy {arn} does not exist; check the ARN (AWS managed policies are "
                        "arn:aws:iam::aws:policy/NAME)",
                        "NoSuchEntity",
                        "GetPolicy",
                    ) from None
                raise

    def describe(self):
        try:
            role = self.iam.get_role(RoleName=self.params["name"])["Role"]
        except AWSError as exc:
            if exc.code == "NoSuchEntity":
                return None
            raise
        attached = self.iam.paginate("list_attached_role_policies", "AttachedPolicies", RoleName=role["RoleName"])
        tags = self.iam.paginate("list_role_tags", "Tags", RoleName=role["RoleName"])
        document = role.get("AssumeRolePolicyDocument")
        if isinstance(document, str):  # some endpoints return it URL-encoded
            document = load_policy(urllib.parse.unquote(document), "the role's trust policy")
        return {
            "arn": role["Arn"],
            "name": role["RoleName"],
            "path": role.get("Path", "/"),
            "description": role.get("Description", ""),
            "max_session_duration": role.get("MaxSessionDuration", 3600),
            "assume_role_policy_document": canonical_policy(document),
            "managed_policy_arns": sorted(p["PolicyArn"] for p in attached),
            "tags": tag_list_to_dict(tags, "Key", "Value"),
        }

    def predicted_arn(self):
        """The ARN a new role will get, from the caller's account; None when STS does not answer at once."""
        try:
            caller = self.module.client("sts", retries=1).get_caller_identity()["Arn"]
        except AWSError:
            return None
        partition, account = caller.split(":")[1], caller.split(":")[4]
        return f"arn:{partition}:iam::{account}:role{self.params['path']}{self.params['name']}"

    def desired(self, current):
        current = current or {}
        managed = self.params["managed_policy_arns"]
        if managed is None:
            managed = current.get("managed_policy_arns", [])
        elif not self.params["purge_managed_policies"]:
            managed = list(managed) + current.get("managed_policy_arns", [])
        description = self.params["description"]
        duration = self.params["max_session_duration"]
        return {
            "arn": current.get("arn") or (self.predicted_arn() if self.module.check_mode else None),
            "name": self.params["name"],
            "path": current.get("path", self.params["path"]),
            "description": current.get("description", "") if description is None else description,
            "max_session_duration": current.get("max_session_duration", 3600) if duration is None else duration,
            "assume_role_policy_document": canonical_policy(self.trust),
            "managed_policy_arns": sorted(set(managed)),
            "tags": desired_tags(current.get("tags"), self.params["tags"], self.params["purge_tags"]),
        }

    def create(self, desired):
        name = desired["name"]
        self.iam.create_role(
            RoleName=name,
            Path=desired["path"],
            AssumeRolePolicyDocument=policy_json(self.trust),
            Description=desired["description"],
            MaxSessionDuration=desired["max_session_duration"],
            Tags=tag_dict_to_list(desired["tags"], "Key", "Value"),
        )
        for arn in desired["managed_policy_arns"]:
            self.iam.attach_role_policy(RoleName=name, PolicyArn=arn)

    def update(self, current, desired):
        name = current["name"]
        if current["assume_role_policy_document"] != desired["assume_role_policy_document"]:
            self.iam.update_assume_role_policy(RoleName=name, PolicyDocument=policy_json(self.trust))
        if (current["description"], current["max_session_duration"]) != (
            desired["description"],
            desired["max_session_duration"],
        ):
            self.iam.update_role(
                RoleName=name, Description=desired["description"], MaxSessionDuration=desired["max_session_duration"]
            )
        for arn in sorted(set(desired["managed_policy_arns"]) - set(current["managed_policy_arns"])):
            self.iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        for arn in sorted(set(current["managed_policy_arns"]) - set(desired["managed_policy_arns"])):
            self.iam.detach_role_policy(RoleName=name, PolicyArn=arn)
        to_set, to_unset = compare_tags(current["tags"], desired["tags"])
        if to_set:
            self.iam.tag_role(RoleName=name, Tags=tag_dict_to_list(to_set, "Key", "Value"))
        if to_unset:
            self.iam.untag_role(RoleName=name, TagKeys=to_unset)

    def delete(self, current):
        name = current["name"]
        for arn in current["managed_policy_arns"]:
            self.iam.detach_role_policy(RoleName=name, PolicyArn=arn)
        for policy_name in self.iam.paginate("list_role_policies", "PolicyNames", RoleName=name):
            self.iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
        for profile in self.iam.paginate("list_instance_profiles_for_role", "InstanceProfiles", RoleName=name):
            self.iam.remove_role_from_instance_profile(
                InstanceProfileName=profile["InstanceProfileName"], RoleName=name
            )
        self.iam.delete_role(RoleName=name)


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        path=dict(type="str", default="/"),
        description=dict(type="str"),
        max_session_duration=dict(type="int"),
        trust_anchor_arns=dict(type="list", elements="str", default=[]),
        x509_subject=dict(type="dict", default={}),
        x509_issuer=dict(type="dict", default={}),
        x509_san=dict(type="dict", default={}),
        source_account=dict(type="str"),
        extra_conditions=dict(type="dict", default={}),
        managed_policy_arns=dict(type="list", elements="str"),
        purge_managed_policies=dict(type="bool", default=True),
        **TAGS_ARGSPEC,
    )
    module = AWSModule("iam", argument_spec, supports_check_mode=True)
    run_resource_module(module, RolesAnywhereRole(module), "role")


if __name__ == "__main__":
    main()
