#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: pkcs11_key
short_description: Non-extractable key pair on a PKCS#11 token (SoftHSM2, TPM 2.0, HSM)
version_added: 0.1.0
description:
  - Ensures a key pair labelled O(label) exists on the token (O(state=present)) or is removed (O(state=absent)).
  - New key pairs are generated on the token with CKA_SENSITIVE=true and CKA_EXTRACTABLE=false; the module reads
    the attributes back and fails if the token did not honour them. The private key never leaves the token.
  - An existing key pair with the same label and the same type and curve/size is kept (changed=false). A key
    pair of another type is an error unless O(force=true), which replaces it.
  - With O(pin_file), finding and creating the key happens under an exclusive lock on that file, so two runs at
    once (two C(enrol.yml) against one host) create one key; the second waits (up to 300 s) and finds it. Public
    keys left without their private half by a run killed inside key generation are destroyed before a new key is
    generated.
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
extends_documentation_fragment:
  - rolesanywhere.fleet.token
  - rolesanywhere.fleet.attributes
options:
  label:
    description: CKA_LABEL of the key pair (a string; unique on the token).
    type: raw
    required: true
  id:
    description:
      - CKA_ID of the key pair as hex, for example C('01') (quote it in YAML). Colons between bytes are allowed.
      - Without it a new key pair gets the SHA-1 of its public key as id, and lookups use the label alone.
    type: raw
  key_type:
    description: Key algorithm.
    type: str
    choices: [ec, rsa]
    default: ec
  curve:
    description: Curve of an EC key (the curves IAM Roles Anywhere accepts).
    type: str
    choices: [secp256r1, secp384r1]
    default: secp256r1
  size:
    description: Size of an RSA key in bits; 2048, 3072 or 4096 (smaller keys are refused).
    type: int
    default: 2048
  state:
    description: Whether the key pair should exist.
    type: str
    choices: [present, absent]
    default: present
  force:
    description: Replace an existing key pair that has another type, curve or size (destroys the old key).
    type: bool
    default: false
notes:
  - Check mode is supported and never generates or deletes keys; diff shows the key before and after.
  - RSA key generation can take seconds on SoftHSM2 and much longer on hardware TPMs.
seealso:
  - module: rolesanywhere.fleet.pkcs11_token
  - module: rolesanywhere.fleet.pkcs11_csr
"""

EXAMPLES = r"""
- name: P-256 key on the host's token
  rolesanywhere.fleet.pkcs11_key:
    module_path: /usr/lib/softhsm/libsofthsm2.so
    token_label: rolesanywhere
    pin_file: /etc/rolesanywhere/token.pin
    label: ra-client
    id: "01"
  register: key

- name: RSA-3072 key on the TPM
  rolesanywhere.fleet.pkcs11_key:
    module_path: /usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so
    token_label: rolesanywhere
    pin: "{{ vault_token_user_pin }}"
    token_env:
      TPM2_PKCS11_STORE: /var/lib/tpm2-pkcs11
      TPM2_PKCS11_TCTI: device:/dev/tpmrm0
    label: ra-client-rsa
    key_type: rsa
    size: 3072

- name: Remove a retired key
  rolesanywhere.fleet.pkcs11_key:
    module_path: /usr/lib/softhsm/libsofthsm2.so
    token_label: rolesanywhere
    pin_file: /etc/rolesanywhere/token.pin
    label: ra-client-old
    state: absent
"""

RETURN = r"""
label:
  description: CKA_LABEL of the key pair.
  returned: always
  type: str
  sample: ra-client
id:
  description: CKA_ID of the key pair as lowercase hex (empty in check mode before a key without O(id) exists).
  returned: when state=present
  type: str
  sample: "01"
uri:
  description: RFC 7512 PKCS#11 URI of the private key, without any PIN.
  returned: when state=present
  type: str
  sample: pkcs11:token=rolesanywhere;id=%01;object=ra-client;type=private
public_key:
  description: Public key in PEM (SubjectPublicKeyInfo); empty in check mode before the key exists.
  returned: when state=present
  type: str
key_type:
  description: C(ec) or C(rsa).
  returned: when state=present
  type: str
curve:
  description: Curve of an EC key.
  returned: when state=present and key_type=ec
  type: str
size:
  description: Key size in bits.
  returned: when state=present
  type: int
attributes:
  description: Protection attributes of the private key as read back from the token.
  returned: when the key exists
  type: dict
  sample: {sensitive: true, extractable: false, always_sensitive: true, never_extractable: true, local: true,
           token: true, private: true}
orphans_removed:
  description:
    - Public keys with this label and no private half (left by a run killed inside key generation), destroyed
      before the new key was generated.
  returned: when a key was generated
  type: int
  sample: 0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _key_pairs, _pkcs11
from ansible_collections.rolesanywhere.fleet.plugins.module_utils._token_options import (
    TOKEN_MUTUALLY_EXCLUSIVE,
    TOKEN_REQUIRED_ONE_OF,
    require_token_libraries,
    token_argument_spec,
    token_spec_from_params,
)


def main():
    module = AnsibleModule(
        argument_spec=token_argument_spec(
            label=dict(type="raw", required=True),
            id=dict(type="raw"),
            key_type=dict(type="str", choices=["ec", "rsa"], default="ec"),
            curve=dict(type="str", choices=list(_pkcs11.CURVES), default="secp256r1"),
            size=dict(type="int", default=2048),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            force=dict(type="bool", default=False),
        ),
        mutually_exclusive=TOKEN_MUTUALLY_EXCLUSIVE,
        required_one_of=TOKEN_REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    require_token_libraries(module)
    try:
        # Validate every option before the token is touched.
        _pkcs11.check_key_label(module.params["label"])
        _pkcs11.parse_key_id(module.params["id"])
        if module.params["state"] == "present":
            _pkcs11.check_key_request(module.params["key_type"], module.params["curve"], module.params["size"])
        spec = token_spec_from_params(module.params)
        # Two runs at once (two enrol.yml against one host) must not both find no key and both create one.
        with _pkcs11.key_creation_lock(spec), _pkcs11.open_token_session(spec, rw=not module.check_mode) as session:
            result = _key_pairs.ensure(session, module.params, module.check_mode)
    except _pkcs11.TokenError as exc:
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
