# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared option docs for the AWS-side modules (connection options and tags)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  region:
    description:
      - The AWS region. Falls back to E(AWS_REGION), then E(AWS_DEFAULT_REGION), then the profile's region.
    type: str
    aliases: [aws_region]
  endpoint_url:
    description:
      - URL of the module's own service endpoint (for example a local IAM Roles Anywhere endpoint or a moto
        server on loopback). Falls back to E(AWS_ENDPOINT_URL).
      - Other services a module calls use O(endpoint_urls).
    type: str
    aliases: [aws_endpoint_url]
  endpoint_urls:
    description:
      - 'Endpoint URLs of the other services a module calls, keyed by botocore service name (C(iam), C(sts),
        C(acm-pca)), for example a moto server on C(http://127.0.0.1:5213) for all three.'
      - Services not listed use botocore's endpoint resolution (including E(AWS_ENDPOINT_URL_<SERVICE>)).
    type: dict
    default: {}
  profile:
    description:
      - Named profile from the AWS shared config and credentials files. Falls back to E(AWS_PROFILE).
    type: str
    aliases: [aws_profile]
  access_key:
    description:
      - AWS access key ID. Falls back to E(AWS_ACCESS_KEY_ID). Never logged.
    type: str
    aliases: [aws_access_key_id]
  secret_key:
    description:
      - AWS secret access key. Falls back to E(AWS_SECRET_ACCESS_KEY). Never logged.
    type: str
    aliases: [aws_secret_access_key]
  session_token:
    description:
      - AWS session token for temporary credentials. Falls back to E(AWS_SESSION_TOKEN). Never logged.
    type: str
    aliases: [aws_session_token]
  aws_ca_bundle:
    description:
      - CA bundle (PEM file on the controller) to verify the endpoints' TLS certificates.
        Falls back to E(AWS_CA_BUNDLE).
    type: path
  validate_certs:
    description:
      - Verify TLS certificates of the endpoints. Turn off only for throw-away test endpoints.
    type: bool
    default: true
notes:
  - Calls are retried with full-jitter exponential backoff on throttling, HTTP 5xx and connection errors
    (botocore's own retries are turned off so attempts do not multiply).
  - Every AWS failure is reported once, as RV(ignore:error.code) and RV(ignore:error.message) next to O(ignore:msg).
requirements:
  - boto3 on the controller
"""

    TAGS = r"""
options:
  tags:
    description:
      - Tags to set on the resource. Omit to leave the tags as they are.
    type: dict
  purge_tags:
    description:
      - Remove tags not listed in O(tags) (tags starting with C(aws:) are never removed).
      - Has no effect when O(tags) is omitted.
    type: bool
    default: true
"""
