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

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11
from ansible_collections.rolesanywhere.fleet.plugins.module_utils._token_options import (
    TOKEN_MUTUALLY_EXCLUSIVE,
    TOKEN_REQUIRED_ONE_OF,
    require_token_libraries,
    token_argument_spec,
    token_spec_from_params,
)


def _describe(keypair, token_label):
    public_key = _pkcs11.public_key_of(keypair)
    info = _pkcs11.describe_public_key(public_key)
    result = dict(
        label=keypair.label,
        id=keypair.key_id.hex(),
        uri=_pkcs11.pkcs11_uri(token_label, keypair.label, keypair.key_id or None),
        public_key=_pkcs11.public_key_pem(public_key),
        key_type=info["key_type"],
        size=info["size"],
        attributes=_pkcs11.key_protection(keypair.private),
    )
    if info["curve"]:
        result["curve"] = info["curve"]
    return result


def _wanted(params, key_type, curve, size):
    summary = dict(label=params["label"], key_type=key_type, size=size or {"secp256r1": 256, "secp384r1": 384}[curve])
    if curve:
        summary["curve"] = curve
    return summary


def _summary(described):
    return {name: described[name] for name in ("label", "key_type", "curve", "size", "id") if name in described}


def ensure(module, session):
    params = module.params
    label = _pkcs11.check_key_label(params["label"])
    key_id = _pkcs11.parse_key_id(params["id"])
    token_label = params["token_label"]
    if params["state"] == "absent":
        existing = _pkcs11.find_keypair(session, label, key_id)
        if existing is None:
            return dict(changed=False, label=label)
        before = _summary(_describe(existing, token_label))
        if not module.check_mode:
            _pkcs11.destroy_keypair(existing)
        return dict(changed=True, label=label, diff=dict(before=before, after={}))

    existing = _pkcs11.find_keypair(session, label)
    if existing is not None and key_id is not None and existing.key_id != key_id:
        raise _pkcs11.TokenError("a key labelled %r already exists with id %s, not %s: choose another label or id, "
                                 "or remove the old key with state=absent"
                                 % (label, existing.key_id.hex() or "(empty)", key_id.hex()))

    key_type, curve, size = _pkcs11.check_key_request(params["key_type"], params["curve"], params["size"])
    before = {}
    if existing is not None:
        described = _describe(existing, token_label)
        matches = _pkcs11.keypair_matches(existing, key_type, curve, size)
        problems = _pkcs11.protection_problems(described["attributes"])
        if matches and not problems:
            return dict(changed=False, **described)
        if not params["force"]:
            if matches:
                raise _pkcs11.TokenError("the existing key %r is not protected (%s): its private key may have left "
                                         "the token; replace it with force=true" % (label, ", ".join(problems)))
            raise _pkcs11.TokenError(
                "a key labelled %r already exists as %s, but %s was requested: choose another label, or set "
                "force=true to destroy the old key and generate a new one"
                % (label, _kind(described), _kind(_wanted(params, key_type, curve, size))))
        before = _summary(described)

    if module.check_mode:
        predicted = _wanted(params, key_type, curve, size)
        predicted_id = key_id.hex() if key_id is not None else ""
        result = dict(predicted, id=predicted_id, public_key="",
                      uri=_pkcs11.pkcs11_uri(token_label, label, key_id))
        return dict(changed=True, diff=dict(before=before, after=dict(predicted, id=predicted_id)), **result)

    if existing is not None:
        _pkcs11.destroy_keypair(existing)
    # A run killed inside key generation may have left a public half: it would pair with nothing.
    orphans = _pkcs11.orphan_public_keys(session, label)
    _pkcs11.destroy_objects(orphans)
    keypair = _pkcs11.generate_keypair(session, label, key_type, curve, size, key_id)
    described = _describe(keypair, token_label)
    return dict(changed=True, diff=dict(before=before, after=_summary(described)), orphans_removed=len(orphans),
                **described)


def _kind(summary):
    if summary["key_type"] == "ec":
        return "EC %s" % summary["curve"]
    return "RSA-%d" % summary["size"]


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
            result = ensure(module, session)
    except _pkcs11.TokenError as exc:
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
