#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: pkcs11_csr
short_description: Certificate signing request signed by a key on a PKCS#11 token
version_added: 0.1.0
description:
  - Writes a PEM CSR to O(path) for the key pair O(label) on the token, signed on the token (the private key never
    leaves it). The CSR is verified (signature and public key) before it is written.
  - Idempotent by content, never by bytes (ECDSA signatures are randomised) - an existing CSR is kept while its
    public key is the token key, its signature verifies and its subject, extensions and signature hash match.
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
extends_documentation_fragment:
  - rolesanywhere.fleet.token
  - ansible.builtin.files
  - rolesanywhere.fleet.attributes
options:
  label:
    description: CKA_LABEL of the key pair on the token (see M(rolesanywhere.fleet.pkcs11_key)).
    type: raw
    required: true
  id:
    description: CKA_ID of the key pair as hex, for example C('01'); needed only when labels repeat.
    type: raw
  subject:
    description:
      - Subject of the CSR as a mapping of C, ST, L, O, OU, CN, DC, emailAddress, serialNumber to values, in the
        order given; a list value repeats the attribute.
      - "Or a list of one-entry mappings, for example C([{OU: a}, {O: b}, {OU: c}]), for any order."
    type: raw
    required: true
  subject_alt_name:
    description:
      - Subject alternative names such as C(DNS:host.example), C(IP:192.0.2.1), C(URI:spiffe://x/y), C(email:a@b).
    type: list
    elements: str
  key_usage:
    description: keyUsage (critical) of the request; an empty list leaves the extension out.
    type: list
    elements: str
    default: [digitalSignature]
  extended_key_usage:
    description:
      - extendedKeyUsage of the request (clientAuth, serverAuth, codeSigning, emailProtection or a dotted OID);
        an empty list leaves the extension out.
    type: list
    elements: str
    default: [clientAuth]
  digest:
    description:
      - Signature hash, V(sha256), V(sha384) or V(sha512). Default - V(sha384) for P-384 keys, V(sha256) for P-256
        and RSA keys. SHA-1 and MD5 are refused.
    type: str
  rsa_padding:
    description: Padding of RSA signatures. V(pss) is opt-in; whether IAM Roles Anywhere accepts it is unverified.
    type: str
    choices: [pkcs1v15, pss]
    default: pkcs1v15
  path:
    description: Where the PEM CSR is written (mode 0644 unless O(mode) says otherwise). The directory must exist.
    type: path
    required: true
  force:
    description: Write a new CSR even when the existing one matches.
    type: bool
    default: false
  key:
    description:
      - Make the key pair O(label) first when the token has none, exactly as M(rolesanywhere.fleet.pkcs11_key)
        with O(rolesanywhere.fleet.pkcs11_key#module:state=present) does (same checks, same lock on the PIN file,
        orphaned public halves removed), so key and CSR take one module run. An existing key of another type,
        curve or size is an error, as there.
      - Without it the key pair must exist.
    type: dict
    suboptions:
      key_type:
        description: Key algorithm.
        type: str
        choices: [ec, rsa]
        default: ec
      curve:
        description: Curve of an EC key.
        type: str
        choices: [secp256r1, secp384r1]
        default: secp256r1
      size:
        description: Size of an RSA key in bits (2048, 3072 or 4096).
        type: int
        default: 2048
notes:
  - Check mode is supported; it logs in and signs on the token (which changes nothing) but writes no file. When
    O(key) would generate the key, check mode reports the change with an empty RV(csr).
  - Diff shows the subject, names, signature hash and public key hash before and after.
seealso:
  - module: rolesanywhere.fleet.pkcs11_key
  - module: rolesanywhere.fleet.x509_issue
"""

EXAMPLES = r"""
- name: CSR for the host's Roles Anywhere certificate
  rolesanywhere.fleet.pkcs11_csr:
    module_path: /usr/lib/softhsm/libsofthsm2.so
    token_label: rolesanywhere
    pin_file: /etc/rolesanywhere/token.pin
    label: ra-client
    subject:
      C: DE
      O: Example
      OU: fleet
      CN: "{{ inventory_hostname }}"
    subject_alt_name:
      - "DNS:{{ inventory_hostname }}"
    path: /etc/rolesanywhere/client.csr
  register: csr

- name: Two OUs in a fixed order
  rolesanywhere.fleet.pkcs11_csr:
    module_path: /usr/lib/softhsm/libsofthsm2.so
    token_label: rolesanywhere
    pin_file: /etc/rolesanywhere/token.pin
    label: ra-client
    subject:
      - O: Example
      - OU: fleet
      - OU: web
      - CN: web1
    path: /etc/rolesanywhere/client.csr
"""

RETURN = r"""
csr:
  description: The CSR in PEM (the existing one when unchanged).
  returned: success
  type: str
path:
  description: Path of the CSR file.
  returned: success
  type: str
subject:
  description: Subject of the CSR as an RFC 4514 string.
  returned: success
  type: str
  sample: CN=web1,OU=fleet,O=Example,C=DE
reasons:
  description: Why a new CSR was written (empty when unchanged).
  returned: success
  type: list
  elements: str
key:
  description: With O(key), the key pair as M(rolesanywhere.fleet.pkcs11_key) returns it (label, id, uri, public_key,
    key_type, curve, size, attributes, changed).
  returned: when O(key) is given
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rolesanywhere.fleet.plugins.module_utils._cryptography import require_cryptography
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _ca, _csr, _key_pairs, _pkcs11
from ansible_collections.rolesanywhere.fleet.plugins.module_utils._token_options import (
    TOKEN_MUTUALLY_EXCLUSIVE,
    TOKEN_REQUIRED_ONE_OF,
    require_token_libraries,
    token_argument_spec,
    token_spec_from_params,
)

NEW_FILE_MODE = 0o644


def ensure(module, key):
    params = module.params
    request = _csr.build_request(params["subject"], params["subject_alt_name"], params["key_usage"],
                                 params["extended_key_usage"], params["digest"], params["rsa_padding"],
                                 public_key=key.public_key())
    path = params["path"]
    existing, problem = _csr.load_csr_file(path)
    reasons = _csr.csr_differences(existing, key.public_key(), request) if existing else [problem]
    if params["force"]:
        reasons.append("force")
    if not reasons:
        csr = existing
    else:
        csr = _csr.sign_csr(key, request)  # signing changes nothing on the token: done in check mode too
        if not module.check_mode:
            mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else NEW_FILE_MODE
            _ca.write_file_atomic(path, _csr.csr_pem(csr).encode("ascii"), mode)
    changed = bool(reasons)
    file_args = module.load_file_common_arguments(params)
    if os.path.exists(path):
        changed = module.set_fs_attributes_if_different(file_args, changed)
    result = dict(changed=changed, path=path, csr=_csr.csr_pem(csr), subject=csr.subject.rfc4514_string(),
                  reasons=reasons)
    if module._diff:
        result["diff"] = dict(before_header=path, after_header=path,
                              before=_csr.csr_summary(existing), after=_csr.csr_summary(csr))
    return result


def _with_key(module, label, spec):
    """Key pair (made when missing, under the key-creation lock) and CSR in one session."""
    params = module.params
    key_params = dict(params["key"], label=label, id=params["id"], token_label=params["token_label"],
                      state="present", force=False)
    with _pkcs11.key_creation_lock(spec), _pkcs11.open_token_session(spec, rw=not module.check_mode) as session:
        key = _key_pairs.ensure(session, key_params, module.check_mode)
        key_diff = key.pop("diff", None)
        if module.check_mode and key["changed"]:
            result = dict(changed=True, path=params["path"], csr="", subject="", reasons=["a new key pair"], key=key)
            if module._diff:
                result["diff"] = key_diff
            return result
        result = ensure(module, _pkcs11.token_private_key(session, label, _pkcs11.parse_key_id(params["id"])))
    result["key"] = key
    result["changed"] = result["changed"] or key["changed"]
    return result


def main():
    module = AnsibleModule(
        argument_spec=token_argument_spec(
            label=dict(type="raw", required=True),
            id=dict(type="raw"),
            subject=dict(type="raw", required=True),
            subject_alt_name=dict(type="list", elements="str"),
            key_usage=dict(type="list", elements="str", default=["digitalSignature"]),
            extended_key_usage=dict(type="list", elements="str", default=["clientAuth"]),
            digest=dict(type="str"),
            rsa_padding=dict(type="str", choices=list(_csr.RSA_PADDINGS), default="pkcs1v15"),
            path=dict(type="path", required=True),
            force=dict(type="bool", default=False),
            key=dict(type="dict", options=dict(
                key_type=dict(type="str", choices=["ec", "rsa"], default="ec"),
                curve=dict(type="str", choices=list(_pkcs11.CURVES), default="secp256r1"),
                size=dict(type="int", default=2048),
            )),
        ),
        mutually_exclusive=TOKEN_MUTUALLY_EXCLUSIVE,
        required_one_of=TOKEN_REQUIRED_ONE_OF,
        add_file_common_args=True,
        supports_check_mode=True,
    )
    require_cryptography(module)
    require_token_libraries(module)
    params = module.params
    try:
        # Everything that can be checked without the key is checked before the token is touched.
        label = _pkcs11.check_key_label(params["label"])
        key_id = _pkcs11.parse_key_id(params["id"])
        _csr.build_request(params["subject"], params["subject_alt_name"], params["key_usage"],
                           params["extended_key_usage"], params["digest"] or "sha256", params["rsa_padding"])
        directory = os.path.dirname(params["path"]) or "."
        if not os.path.isdir(directory):
            module.fail_json(msg="the directory of path %s does not exist: create it first" % params["path"])
        if params["key"]:
            _pkcs11.check_key_request(params["key"]["key_type"], params["key"]["curve"], params["key"]["size"])
            result = _with_key(module, label, token_spec_from_params(params))
        else:
            with _pkcs11.open_token_session(token_spec_from_params(params)) as session:
                result = ensure(module, _pkcs11.token_private_key(session, label, key_id))
    except (_pkcs11.TokenError, _csr.CSRError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
