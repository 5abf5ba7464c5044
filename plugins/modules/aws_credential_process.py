#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: aws_credential_process
short_description: Wire an AWS profile to the IAM Roles Anywhere signing helper with credential_process
version_added: 0.1.0
description:
  - Writes C([profile NAME]) (C([default]) for V(default)) into a user's C(~/.aws/config) with a single-line
    C(credential_process) that runs AWS's C(aws_signing_helper) (O(impl=aws)) or the collection's bundled
    helper (O(impl=python)), plus C(region) when O(region) is set.
  - Every other section, key and comment of the file is kept. The file is owned by O(user) with mode 0600,
    its directory with mode 0700, because the command line may hold the token PIN.
  - With O(impl=aws) the PIN has to sit in the key URI (C(?pin-value=)); it then appears in the config file and,
    while the helper runs, in its command line. O(impl=python) reads it from O(pin_file) (C(?pin-source=file:)),
    so the config file holds no PIN.
  - Diffs and the returned command show the PIN masked.
options:
  user:
    description: The user whose C(~/.aws/config) is written; the file and directory are owned by this user.
    type: str
    required: true
  config_path:
    description: The config file to edit instead of C(~USER/.aws/config).
    type: path
  profile:
    description: The profile name (C([profile NAME]); V(default) writes C([default])).
    type: str
    required: true
  state:
    description: V(present) writes the profile's keys; V(absent) removes the whole profile section.
    type: str
    choices: [present, absent]
    default: present
  impl:
    description: Which signing helper the profile runs.
    type: str
    choices: [aws, python]
    default: python
  helper_path:
    description:
      - The helper command. Defaults to C(/usr/local/bin/aws_signing_helper) (O(impl=aws)) or
        C(/usr/local/bin/rolesanywhere-credential-helper) (O(impl=python)), where the role
        C(rolesanywhere.fleet.signing_helper) installs them.
    type: path
  certificate:
    description: The client certificate (PEM file) on the host.
    type: path
  intermediates:
    description: PEM bundle of intermediate CA certificates; always pass it when a chain exists.
    type: path
  private_key:
    description:
      - The key as a PEM file path or a C(pkcs11:) URI. Mutually exclusive with O(token_label).
      - A PIN inside a URI given here is written as is; prefer O(token_label) with O(pin) or O(pin_file).
    type: str
  token_label:
    description: The token holding the key; with O(key_label) (and O(key_id)) the module builds the C(pkcs11:) URI.
    type: str
  key_label:
    description: CKA_LABEL of the private key on the token.
    type: str
  key_id:
    description: CKA_ID of the key as hex (for example V('01')).
    type: str
  module_path:
    description: The PKCS#11 library, passed as C(--pkcs11-lib).
    type: path
  pin:
    description:
      - The token user PIN, written into the URI as C(?pin-value=).
      - O(impl=aws) uses it when given; O(impl=python) only when O(pin_file) is not set. Giving both lets one task
        serve either implementation.
    type: str
  pin_file:
    description:
      - A 0600 file holding the PIN. O(impl=python) references it (C(?pin-source=file:)), so the config holds no
        PIN; O(impl=aws) cannot read files, so without O(pin) the module reads it and writes the PIN into the URI.
    type: path
  token_env:
    description:
      - Environment the helper needs to see the token (for example C(SOFTHSM2_CONF)); prefixed with C(env).
    type: dict
    default: {}
  trust_anchor_arn:
    description: The trust anchor ARN.
    type: str
  profile_arn:
    description: The Roles Anywhere profile ARN.
    type: str
  role_arn:
    description: The IAM role to assume.
    type: str
  region:
    description: Written as the profile's C(region) and passed to the helper as C(--region).
    type: str
  endpoint:
    description: The Roles Anywhere endpoint URL (default the region's public endpoint).
    type: str
  ca_bundle:
    description:
      - CA bundle to verify O(endpoint). O(impl=python) gets C(--ca-bundle); AWS's helper gets C(SSL_CERT_FILE).
    type: path
  session_duration:
    description: Session duration in seconds (900 to 43200); the helper's default 3600 when omitted.
    type: int
  role_session_name:
    description: Role session name (the profile must accept role session names).
    type: str
  cache:
    description: O(impl=python) only. Cache credentials in a private file until 15 minutes before expiry.
    type: bool
    default: false
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
extends_documentation_fragment:
  - rolesanywhere.fleet.attributes
"""

EXAMPLES = r"""
- name: Profile ra runs the bundled helper with a token key; the config file holds no PIN
  rolesanywhere.fleet.aws_credential_process:
    user: app
    profile: ra
    impl: python
    certificate: /etc/rolesanywhere/host.pem
    intermediates: /etc/rolesanywhere/chain.pem
    token_label: host
    key_label: ra-2026
    module_path: /usr/lib/softhsm/libsofthsm2.so
    pin_file: /home/app/.config/rolesanywhere/pin
    trust_anchor_arn: "{{ trust_anchor_arn }}"
    profile_arn: "{{ profile_arn }}"
    role_arn: "{{ role_arn }}"
    region: eu-central-1
    cache: true

- name: The same with AWS's binary (the PIN goes into the URI)
  rolesanywhere.fleet.aws_credential_process:
    user: app
    profile: ra
    impl: aws
    certificate: /etc/rolesanywhere/host.pem
    token_label: host
    key_label: ra-2026
    module_path: /usr/lib/softhsm/libsofthsm2.so
    pin: "{{ vault_token_pin }}"
    trust_anchor_arn: "{{ trust_anchor_arn }}"
    profile_arn: "{{ profile_arn }}"
    role_arn: "{{ role_arn }}"
    region: eu-central-1

- name: Remove the profile
  rolesanywhere.fleet.aws_credential_process:
    user: app
    profile: ra
    state: absent
"""

RETURN = r"""
config_path:
  description: The config file written.
  returned: always
  type: str
  sample: /home/app/.aws/config
section:
  description: The section header managed.
  returned: always
  type: str
  sample: "[profile ra]"
command:
  description: The credential_process command line, PIN masked.
  returned: when O(state=present)
  type: str
  sample: "/usr/local/bin/rolesanywhere-credential-helper credential-process --certificate /etc/rolesanywhere/host.pem ..."
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _aws_config


def main():
    module = AnsibleModule(
        argument_spec=_aws_config.ARGUMENT_SPEC,
        mutually_exclusive=_aws_config.MUTUALLY_EXCLUSIVE,
        required_if=_aws_config.REQUIRED_IF,
        required_together=_aws_config.REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    try:
        result, warnings = _aws_config.ensure(module.params, module.check_mode, module._diff)
    except _aws_config.ProfileError as exc:
        module.fail_json(msg=str(exc))
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
