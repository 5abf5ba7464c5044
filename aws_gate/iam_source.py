# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a role's policies, tags and managed session policies from the upstream's IAM API.

Read at every request, not cached: a policy change applies to live sessions as it does in AWS.
"""
from __future__ import annotations

from dataclasses import dataclass

import boto3
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from aws_gate.policy import NamedPolicy


class PolicySourceError(Exception):
    """The upstream's IAM could not supply a policy; the message names it and the fix."""


@dataclass(frozen=True)
class RolePolicies:
    role_id: str
    identity: list[NamedPolicy]
    permissions_boundary: NamedPolicy | None
    tags: dict[str, str]


class IamPolicySource:
    """IAM reads against ``endpoint_url`` with the gate's own credentials.

    Credentials come from the gate's environment (the standard botocore chain); without any, the
    moto default ``testing`` key is used, which a moto server without IAM enforcement accepts.
    """

    def __init__(self, endpoint_url: str, region: str = "us-east-1"):
        session = boto3.session.Session(region_name=region)
        credentials = session.get_credentials() or Credentials("testing", "testing")
        frozen = credentials.get_frozen_credentials()
        self._iam = session.client(
            "iam", endpoint_url=endpoint_url, aws_access_key_id=frozen.access_key,
            aws_secret_access_key=frozen.secret_key, aws_session_token=frozen.token,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        )

    def role(self, role_arn: str) -> RolePolicies:
        name = role_arn.rsplit("/", 1)[-1]
        try:
            role = self._iam.get_role(RoleName=name)["Role"]
            identity = []
            for attached in self._paged("list_attached_role_policies", "AttachedPolicies", RoleName=name):
                identity.append(self.managed_policy(attached["PolicyArn"]))
            for policy_name in self._paged("list_role_policies", "PolicyNames", RoleName=name):
                document = self._iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
                identity.append(NamedPolicy(f"{name}/{policy_name}", document))
            tags = {t["Key"]: t["Value"] for t in self._paged("list_role_tags", "Tags", RoleName=name)}
        except ClientError as exc:
            raise PolicySourceError(f"cannot read role {role_arn} from the upstream IAM: {_message(exc)}") from None
        except BotoCoreError as exc:
            raise PolicySourceError(f"cannot reach the upstream IAM to read role {role_arn}: {exc}") from None
        boundary_arn = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        boundary = self.managed_policy(boundary_arn) if boundary_arn else None
        return RolePolicies(role["RoleId"], identity, boundary, tags)

    def managed_policy(self, arn: str) -> NamedPolicy:
        try:
            version = self._iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
            document = self._iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
        except ClientError as exc:
            hint = ""
            if ":aws:policy/" in arn:
                hint = " (AWS managed policies exist in moto only with MOTO_IAM_LOAD_MANAGED_POLICIES=true)"
            raise PolicySourceError(f"cannot read managed policy {arn}: {_message(exc)}{hint}") from None
        except BotoCoreError as exc:
            raise PolicySourceError(f"cannot reach the upstream IAM to read {arn}: {exc}") from None
        return NamedPolicy(arn, document)

    def _paged(self, operation: str, key: str, **kwargs):
        for page in self._iam.get_paginator(operation).paginate(**kwargs):
            yield from page[key]


def _message(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
