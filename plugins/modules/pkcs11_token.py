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
  - With O(config), O(store) and O(pin_file) it also writes the library's configuration, creates the token's
    store and hands it to the signing user, and writes that user's PIN file, in the same module run (the role
    C(rolesanywhere.fleet.token) sets up SoftHSM2 or a TPM 2.0 this way). Paths in places the signing user
    controls are walked without following that user's links, as M(rolesanywhere.fleet.owned_path) does.
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
      - Written to O(pin_file) when that is given (then it may come without O(so_pin)).
    type: str
  config:
    description:
      - The PKCS#11 library's configuration file (for example C(softhsm2.conf)), written as root with mode 0644
        before the library is loaded. In check mode a changed configuration means the library is not asked.
    type: dict
    suboptions:
      path:
        description: Absolute path of the file.
        type: path
        required: true
      content:
        description: Its content.
        type: str
        required: true
  store:
    description:
      - The directory the library keeps the token in (SoftHSM2's C(tokendir), tpm2-pkcs11's store). Created
        (mode 0700) before the token is initialised, then given with everything below it to O(store.owner).
    type: dict
    suboptions:
      path:
        description: Absolute path of the directory.
        type: path
        required: true
      owner:
        description: The signing user.
        type: str
        default: root
      group:
        description: The group; the owner's primary group when omitted.
        type: str
  pin_file:
    description: Where O(user_pin) is written for the signing user (mode 0600, never logged).
    type: dict
    suboptions:
      path:
        description: Absolute path of the file.
        type: path
        required: true
      owner:
        description: The signing user.
        type: str
        default: root
      group:
        description: The group; the owner's primary group when omitted.
        type: str
notes:
  - Check mode is supported and changes nothing. The module makes at most one security-officer login.
  - The files and directories are written before (configuration, store) and after (store owner, PIN file) the
    token step; a failure in between leaves the configuration and the store in place for the next run.
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

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _user_files as files
from ansible_collections.rolesanywhere.fleet.plugins.module_utils._token_options import (
    require_token_libraries,
    token_env_from_params,
    token_location_argument_spec,
)


def _setup_files(params, check_mode):
    """Configuration and store before the token step: (changed, ready), where ``ready`` says whether the library
    can be asked (in check mode a configuration or store still to be written cannot)."""
    changed = False
    if params["config"]:
        # the signing user's library reads it: its directory must let others through (Debian ships /etc/softhsm 0750)
        config_dir = os.path.dirname(params["config"]["path"])
        group = os.stat(config_dir).st_gid if os.path.isdir(config_dir) else 0
        changed = files.ensure_directory(config_dir, 0, group, 0o755, False, check_mode)
        changed = files.ensure_file(params["config"]["path"], params["config"]["content"].encode("utf-8"), 0, 0,
                                    0o644, check_mode) or changed
    if params["store"]:
        store = params["store"]
        uid, gid = files.account(store["owner"], store["group"])
        try:
            fd = files.open_directory(store["path"], uid, gid)
            os.close(fd)
        except files.MissingDirectory:
            changed = True
            if not check_mode:  # root's until the token is in it; given to the owner afterwards
                os.close(files.open_directory(store["path"], 0, 0, create_mode=0o700))
    return changed, not (check_mode and changed)


def _hand_over(params, check_mode):
    """Store to its owner, PIN file written: whether anything changed."""
    changed = False
    if params["store"]:
        store = params["store"]
        uid, gid = files.account(store["owner"], store["group"])
        changed = files.ensure_directory(store["path"], uid, gid, 0o700, True, check_mode)
    if params["pin_file"]:
        pin_file = params["pin_file"]
        uid, gid = files.account(pin_file["owner"], pin_file["group"])
        changed = files.ensure_file(pin_file["path"], params["user_pin"].encode("utf-8"), uid, gid, 0o600,
                                    check_mode) or changed
    return changed


def _ensure_token(module, env):
    """The token step: (changed, info)."""
    params = module.params
    label = params["token_label"]
    info = _pkcs11.describe_token(params["module_path"], label, env)
    if info is not None and info["user_pin_initialized"]:
        return False, info
    if params["so_pin"] is None:
        problem = "has no user PIN" if info else "does not exist"
        module.fail_json(msg="token %r %s on %s: give so_pin and user_pin to %s it"
                         % (label, problem, params["module_path"], "complete" if info else "create"))
    if module.check_mode:
        predicted = dict(info or {"label": label, "serial": "", "manufacturer": "", "model": ""})
        predicted["user_pin_initialized"] = True
        return True, predicted
    if info is None:
        return True, _pkcs11.init_token(params["module_path"], label, params["so_pin"], params["user_pin"], env)
    _pkcs11.set_user_pin(params["module_path"], label, params["so_pin"], params["user_pin"], env)
    return True, _pkcs11.describe_token(params["module_path"], label, env)


def main():
    path_owner = dict(path=dict(type="path", required=True), owner=dict(type="str", default="root"),
                      group=dict(type="str"))
    module = AnsibleModule(
        argument_spec=token_location_argument_spec(
            so_pin=dict(type="str", no_log=True),
            user_pin=dict(type="str", no_log=True),
            config=dict(type="dict", options=dict(path=dict(type="path", required=True),
                                                  content=dict(type="str", required=True))),
            store=dict(type="dict", options=path_owner),
            pin_file=dict(type="dict", options=dict(path_owner), no_log=False),
        ),
        required_by={"so_pin": "user_pin"},
        supports_check_mode=True,
    )
    require_token_libraries(module)
    params = module.params
    if params["pin_file"] and not params["user_pin"]:
        module.fail_json(msg="pin_file needs user_pin: give the PIN to write")
    if params["user_pin"] and not (params["so_pin"] or params["pin_file"]):
        module.fail_json(msg="user_pin is used with so_pin (to set it on the token) or pin_file (to write it)")
    env = token_env_from_params(params)
    try:
        _pkcs11.validate_spec(_pkcs11.TokenSpec(params["module_path"], params["token_label"], env=env),
                              need_pin=False)
        files_changed, ready = _setup_files(params, module.check_mode)
        token_changed, info = _ensure_token(module, env) if ready else (True, None)
        files_changed = _hand_over(params, module.check_mode) or files_changed
    except _pkcs11.TokenError as exc:
        module.fail_json(msg=str(exc))
    except files.UnsafePath as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="cannot write %s: %s" % (exc.filename, exc.strerror))
    result = _result(info) if info else dict(label=params["token_label"], user_pin_initialized=True)
    module.exit_json(changed=token_changed or files_changed, **result)


def _result(info):
    return {name: info[name] for name in ("label", "serial", "manufacturer", "model", "user_pin_initialized")}


if __name__ == "__main__":
    main()
