#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: pkcs11_token
short_description: Ensure a PKCS#11 token with a given label exists and is initialised
version_added: 0.1.0
description:
  - Ensures that the PKCS#11 library O(module_path) has a token labelled O(token_label) with a user PIN.
  - When there is no such token, a free slot is initialised with O(so_pin) and the user PIN is set to O(user_pin)
    (SoftHSM2, tpm2-pkcs11 and other libraries that offer an uninitialised slot).
  - An existing token is never re-initialised (that would wipe its keys). A pre-provisioned token, for example on
    a network HSM, is only checked and reported; if it lacks a user PIN, O(so_pin) and O(user_pin) set it.
  - The role C(rolesanywhere.fleet.token) sets up SoftHSM2 or a TPM 2.0 and then runs this module.
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
extends_documentation_fragment:
  - rolesanywhere.fleet.token.location
  - rolesanywhere.fleet.attributes.no_diff
options:
  so_pin:
    description:
      - Security officer PIN, used only to initialise a new token or to set a missing user PIN. Keep it in
        Ansible Vault.
    type: str
  user_pin:
    description:
      - User PIN set on a new token (at least 4 characters). The signing user logs in with it.
    type: str
notes:
  - Check mode is supported and changes nothing. The module makes at most one security-officer login.
  - Only one process may use a token while it is initialised.
seealso:
  - module: rolesanywhere.fleet.pkcs11_key
"""

EXAMPLES = r"""
- name: SoftHSM2 token for the signing helper
  rolesanywhere.fleet.pkcs11_token:
    module_path: /usr/lib/softhsm/libsofthsm2.so
    token_label: rolesanywhere
    so_pin: "{{ vault_token_so_pin }}"
    user_pin: "{{ vault_token_user_pin }}"

- name: Token on the TPM (tpm2-pkcs11 with the kernel resource manager)
  rolesanywhere.fleet.pkcs11_token:
    module_path: /usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so
    token_label: rolesanywhere
    so_pin: "{{ vault_token_so_pin }}"
    user_pin: "{{ vault_token_user_pin }}"
    token_env:
      TPM2_PKCS11_STORE: /var/lib/tpm2-pkcs11
      TPM2_PKCS11_TCTI: device:/dev/tpmrm0

- name: Only check a pre-provisioned HSM token
  rolesanywhere.fleet.pkcs11_token:
    module_path: /opt/hsm/lib/libcryptoki.so
    token_label: fleet-partition
  register: hsm
"""

RETURN = r"""
label:
  description: Label of the token.
  returned: always
  type: str
  sample: rolesanywhere
serial:
  description: Serial number of the token (empty in check mode before the token exists).
  returned: always
  type: str
  sample: 7666d58508616788
manufacturer:
  description: Manufacturer of the token.
  returned: always
  type: str
  sample: SoftHSM project
model:
  description: Model of the token.
  returned: always
  type: str
  sample: SoftHSM v2
user_pin_initialized:
  description: Whether the token has a user PIN (after the module ran).
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11
from ansible_collections.rolesanywhere.fleet.plugins.module_utils._token_options import (
    require_token_libraries,
    token_env_from_params,
    token_location_argument_spec,
)


def main():
    module = AnsibleModule(
        argument_spec=token_location_argument_spec(
            so_pin=dict(type="str", no_log=True),
            user_pin=dict(type="str", no_log=True),
        ),
        required_together=[("so_pin", "user_pin")],
        supports_check_mode=True,
    )
    require_token_libraries(module)
    params = module.params
    label = params["token_label"]
    env = token_env_from_params(params)
    try:
        _pkcs11.validate_spec(_pkcs11.TokenSpec(params["module_path"], label, env=env), need_pin=False)
        info = _pkcs11.describe_token(params["module_path"], label, env)
        if info is not None and info["user_pin_initialized"]:
            module.exit_json(changed=False, **_result(info))
        if params["so_pin"] is None:
            problem = "has no user PIN" if info else "does not exist"
            module.fail_json(msg="token %r %s on %s: give so_pin and user_pin to %s it"
                             % (label, problem, params["module_path"], "complete" if info else "create"))
        if module.check_mode:
            predicted = dict(info or {"label": label, "serial": "", "manufacturer": "", "model": ""})
            predicted["user_pin_initialized"] = True
            module.exit_json(changed=True, **_result(predicted))
        if info is None:
            info = _pkcs11.init_token(params["module_path"], label, params["so_pin"], params["user_pin"], env)
        else:
            _pkcs11.set_user_pin(params["module_path"], label, params["so_pin"], params["user_pin"], env)
            info = _pkcs11.describe_token(params["module_path"], label, env)
    except _pkcs11.TokenError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, **_result(info))


def _result(info):
    return {name: info[name] for name in ("label", "serial", "manufacturer", "model", "user_pin_initialized")}


if __name__ == "__main__":
    main()
