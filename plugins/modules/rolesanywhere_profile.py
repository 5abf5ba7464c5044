#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: rolesanywhere_profile
short_description: IAM Roles Anywhere profile - roles, session policies and session duration
version_added: 0.1.0
description:
  - Creates, updates or deletes an IAM Roles Anywhere profile, identified by its name.
  - A profile names the roles a certificate may assume and narrows their permissions with managed policies
    and an inline session policy (effective permissions = role policies intersected with session policies).
  - Before any change, checks that the inline session policy is a valid policy document, that the duration
    is within 900..43200 seconds, and (with O(validate_arns)) that every role and managed policy exists in
    IAM. Bad input fails with a clear message and changes nothing.
  - Check mode predicts the result without changing anything; diff shows the profile before and after.
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
extends_documentation_fragment:
  - rolesanywhere.fleet.aws
  - rolesanywhere.fleet.aws.tags
  - rolesanywhere.fleet.attributes
  - rolesanywhere.fleet.attributes.aws_group
options:
  name:
    description: Name of the profile (the module's key; names must be unique in the region).
    type: str
    required: true
  state:
    description: C(present) creates or updates; C(absent) deletes.
    type: str
    choices: [present, absent]
    default: present
  role_arns:
    description: IAM roles that sessions from this profile may assume (same account). Required with O(state=present).
    type: list
    elements: str
  managed_policy_arns:
    description: Managed policies applied as session policies (at most 50). Omit to leave them as they are.
    type: list
    elements: str
  session_policy:
    description:
      - Inline session policy, as JSON text or a YAML dict. Omit to leave it as it is.
    type: json
  duration_seconds:
    description:
      - Session duration in seconds, 900..43200 (the role's MaxSessionDuration still caps it).
        New profiles default to 3600; omit to leave it as it is.
    type: int
  require_instance_properties:
    description:
      - Require instance properties in CreateSession. Set at creation only; AWS's signing helper never sends
        them, so leave it false with that helper.
    type: bool
  accept_role_session_name:
    description: Let clients choose the role session name. Omit to leave it (new profiles - false).
    type: bool
  enabled:
    description: Whether the profile vends sessions.
    type: bool
    default: true
  validate_arns:
    description:
      - Check with IAM that every role in O(role_arns) and every policy in O(managed_policy_arns) exists
        (uses the C(iam) endpoint, see O(endpoint_urls)).
      - Turn off only when the roles are created later in the same run (check mode of a first setup).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Profile that narrows the role to read-only S3, one bucket, from the office network
  rolesanywhere.fleet.rolesanywhere_profile:
    name: fleet-innovation
    role_arns:
      - "{{ role.role.arn }}"
    managed_policy_arns:
      - arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess
    session_policy:
      Version: "2012-10-17"
      Statement:
        - Effect: Deny
          Action: "*"
          NotResource: ["arn:aws:s3:::fleet-data", "arn:aws:s3:::fleet-data/*"]
    duration_seconds: 3600
"""

RETURN = r"""
profile:
  description: The profile after the run (predicted in check mode; empty when absent).
  returned: always
  type: dict
  contains:
    profile_arn:
      description: ARN (null in check mode for a new profile).
      type: str
    profile_id:
      description: ID.
      type: str
    name:
      description: Name.
      type: str
    role_arns:
      description: Roles, sorted.
      type: list
      elements: str
    managed_policy_arns:
      description: Managed session policies, sorted.
      type: list
      elements: str
    session_policy:
      description: The inline session policy (parsed), or null.
      type: dict
    duration_seconds:
      description: Session duration.
      type: int
    require_instance_properties:
      description: Whether instance properties are required.
      type: bool
    accept_role_session_name:
      description: Whether clients may name the session.
      type: bool
    enabled:
      description: Whether the profile is enabled.
      type: bool
    tags:
      description: Tags.
      type: dict
error:
  description: The AWS error code and message when the module fails on an AWS call.
  returned: failure
  type: dict
"""

import json

from ansible_collections.rolesanywhere.fleet.plugins.module_utils._aws import (
    TAGS_ARGSPEC,
    AWSError,
    AWSModule,
    Resource,
    arn_resource_name,
    canonical_policy,
    check_duration,
    desired_tags,
    find_by_name,
    load_policy,
    policy_json,
    rolesanywhere_tags,
    run_resource_module,
    set_enabled,
    sync_rolesanywhere_tags,
    tag_dict_to_list,
)

MAX_MANAGED_POLICIES = 50
UPDATABLE = {
    "role_arns": "roleArns",
    "managed_policy_arns": "managedPolicyArns",
    "duration_seconds": "durationSeconds",
    "accept_role_session_name": "acceptRoleSessionName",
}


class Profile(Resource):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.ra = module.client()
        self.policy = None

    def validate(self):
        check_duration(self.params["duration_seconds"])
        if self.params["session_policy"] is not None:
            self.policy = load_policy(self.params["session_policy"], "session_policy")
        managed = self.params["managed_policy_arns"] or []
        if len(managed) > MAX_MANAGED_POLICIES:
            raise AWSError(f"{len(managed)} managed_policy_arns; a profile takes at most {MAX_MANAGED_POLICIES}",
                           "ValidationException")
        for arn in self.params["role_arns"]:
            arn_resource_name(arn, "role")
        if self.params["validate_arns"]:
            self.check_iam(self.params["role_arns"], managed)

    def check_iam(self, role_arns, policy_arns):
        iam = self.module.client("iam")
        for arn in role_arns:
            try:
                found = iam.get_role(RoleName=arn_resource_name(arn, "role"))["Role"]["Arn"]
            except AWSError as exc:
                if exc.code != "NoSuchEntity":
                    raise
                found = None
            if found != arn:
                raise AWSError(
                    f"role_arns: {arn} is not an IAM role of this account"
                    + (f" (the role of that name is {found})" if found else "")
                    + "; create it first (rolesanywhere.fleet.iam_role_rolesanywhere) or fix the ARN",
                    "UnknownRole",
                )
        for arn in policy_arns:
            try:
                iam.get_policy(PolicyArn=arn)
            except AWSError as exc:
                if exc.code != "NoSuchEntity":
                    raise
                raise AWSError(f"managed_policy_arns: {arn} does not exist; check the ARN", "UnknownPolicy") from None

    def describe(self):
        profile = find_by_name(self.ra, "list_profiles", "profiles", self.params["name"], "profile")
        if profile is None:
            return None
        policy = profile.get("sessionPolicy")
        return {
            "profile_arn": profile["profileArn"],
            "profile_id": profile["profileId"],
            "name": profile["name"],
            "role_arns": sorted(profile.get("roleArns", [])),
            "managed_policy_arns": sorted(profile.get("managedPolicyArns") or []),
            "session_policy": canonical_policy(json.loads(policy)) if policy else None,
            "duration_seconds": profile.get("durationSeconds", 3600),
            "require_instance_properties": profile.get("requireInstanceProperties", False),
            "accept_role_session_name": profile.get("acceptRoleSessionName", False),
            "enabled": profile.get("enabled", False),
            "tags": rolesanywhere_tags(self.ra, profile["profileArn"]),
        }

    def desired(self, current):
        p = self.params
        defaults = current or {
            "profile_arn": None,
            "profile_id": None,
            "managed_policy_arns": [],
            "session_policy": None,
            "duration_seconds": 3600,
            "require_instance_properties": False,
            "accept_role_session_name": False,
            "tags": {},
        }
        wanted_rip = p["require_instance_properties"]
        if current and wanted_rip is not None and wanted_rip != current["require_instance_properties"]:
            raise AWSError(
                "require_instance_properties cannot be changed on an existing profile; delete it (state=absent) "
                "and create it again",
                "ValidationException",
            )

        def pick(key):
            return defaults[key] if p[key] is None else p[key]

        return {
            "profile_arn": defaults["profile_arn"],
            "profile_id": defaults["profile_id"],
            "name": p["name"],
            "role_arns": sorted(p["role_arns"]),
            "managed_policy_arns": sorted(pick("managed_policy_arns")),
            "session_policy": defaults["session_policy"] if self.policy is None else canonical_policy(self.policy),
            "duration_seconds": pick("duration_seconds"),
            "require_instance_properties": pick("require_instance_properties"),
            "accept_role_session_name": pick("accept_role_session_name"),
            "enabled": p["enabled"],
            "tags": desired_tags(defaults["tags"], p["tags"], p["purge_tags"]),
        }

    def create(self, desired):
        params = {api: desired[key] for key, api in UPDATABLE.items()}
        if self.policy is not None:
            params["sessionPolicy"] = policy_json(self.policy)
        self.ra.create_profile(
            name=desired["name"],
            requireInstanceProperties=desired["require_instance_properties"],
            enabled=desired["enabled"],
            tags=tag_dict_to_list(desired["tags"]),
            **params,
        )

    def update(self, current, desired):
        profile_id = current["profile_id"]
        changes = {api: desired[key] for key, api in UPDATABLE.items() if current[key] != desired[key]}
        if current["session_policy"] != desired["session_policy"]:
            changes["sessionPolicy"] = policy_json(self.policy)
        if changes:
            self.ra.update_profile(profileId=profile_id, **changes)
        if current["enabled"] != desired["enabled"]:
            set_enabled(self.ra, "profile", "profileId", profile_id, desired["enabled"])
        sync_rolesanywhere_tags(self.ra, current["profile_arn"], current["tags"], desired["tags"])

    def delete(self, current):
        self.ra.delete_profile(profileId=current["profile_id"])


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        role_arns=dict(type="list", elements="str"),
        managed_policy_arns=dict(type="list", elements="str"),
        session_policy=dict(type="json"),
        duration_seconds=dict(type="int"),
        require_instance_properties=dict(type="bool"),
        accept_role_session_name=dict(type="bool"),
        enabled=dict(type="bool", default=True),
        validate_arns=dict(type="bool", default=True),
        **TAGS_ARGSPEC,
    )
    module = AWSModule(
        "rolesanywhere", argument_spec, supports_check_mode=True, required_if=[("state", "present", ("role_arns",))]
    )
    run_resource_module(module, Profile(module), "profile")


if __name__ == "__main__":
    main()
