#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: rolesanywhere_subject_info
short_description: Read IAM Roles Anywhere's subject activity (when each certificate last got credentials)
version_added: 0.1.0
description:
  - Lists Roles Anywhere's subjects (one per certificate subject that asked for credentials) with when each was
    last seen, and with O(credentials=true) each certificate's serial and last use (C(GetSubject) per subject).
  - C(playbooks/report.yml) joins this into the fleet report to mark hosts that AWS has not seen recently.
  - Reads only, so it runs in check mode too.
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
extends_documentation_fragment:
  - rolesanywhere.fleet.aws
options:
  credentials:
    description: Also read each subject's certificates (one C(GetSubject) call per subject).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Nothing changes.
  action_group:
    support: full
    membership: [rolesanywhere.fleet.aws]
    description: Takes its AWS connection options from C(module_defaults) of the group.
"""

EXAMPLES = r"""
- name: When did AWS last see each certificate
  rolesanywhere.fleet.rolesanywhere_subject_info:
    region: eu-west-1
  register: activity
"""

RETURN = r"""
subjects:
  description: One entry per subject.
  returned: success
  type: list
  elements: dict
  contains:
    subject_arn:
      description: The subject's ARN.
      type: str
    subject_id:
      description: The subject's id.
      type: str
    x509_subject:
      description: The certificate subject, for example C(CN=web01,OU=Innovation,O=Example).
      type: str
    enabled:
      description: Whether the subject is enabled.
      type: bool
    last_seen_at:
      description: When a certificate with this subject last asked for credentials (UTC, C(%Y-%m-%dT%H:%M:%SZ)).
      type: str
    credentials:
      description:
        - With O(credentials=true), per certificate its C(serial_number) (lower-case hex, as the host state keeps
          it), C(issuer), C(seen_at), C(failed) (the last request was refused) and C(enabled).
      type: list
      elements: dict
"""

from ansible_collections.rolesanywhere.fleet.plugins.module_utils._aws import AWSError, AWSModule, list_subjects


def main():
    module = AWSModule("rolesanywhere", argument_spec=dict(credentials=dict(type="bool", default=True)),
                       supports_check_mode=True)
    try:
        subjects = list_subjects(module.client(), credentials=module.params["credentials"])
    except AWSError as exc:
        module.fail_aws(exc)
    module.exit_json(changed=False, subjects=subjects)


if __name__ == "__main__":
    main()
