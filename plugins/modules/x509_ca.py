#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: x509_ca
short_description: Self-signed CA certificate for IAM Roles Anywhere, key in a file or on a PKCS#11 token
version_added: 0.1.0
description:
  - Ensures a self-signed CA certificate at O(path) with O(subject), signed by O(key), either a PEM key file (created
    when absent, mode 0600, encrypted with O(key.passphrase)) or a key pair on a PKCS#11 token.
  - The certificate meets the Roles Anywhere CA rules; X.509 v3, basicConstraints CA:TRUE (critical), keyUsage
    keyCertSign, cRLSign and digitalSignature (critical), subjectKeyIdentifier, SHA-384 for P-384 keys and
    SHA-256 otherwise.
  - The certificate is kept (changed=false) while it matches the key, O(subject) and O(path_length), passes the
    CA rules and has more than O(renew_before_days) left. A renewed CA certificate keeps key and subject, so
    certificates issued before still verify.
  - Use this certificate (the CA bundle) as the source of the Roles Anywhere trust anchor.
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
requirements:
  - cryptography >= 42
  - python-pkcs11 (only for a CA key on a token)
extends_documentation_fragment:
  - rolesanywhere.fleet.ca_key
  - rolesanywhere.fleet.attributes
options:
  path:
    description: Where the CA certificate (PEM) is written, mode 0644. Its directory must exist.
    type: path
    required: true
  subject:
    description:
      - Subject of the CA, a mapping of C, ST, L, O, OU, CN, DC, emailAddress, serialNumber to values; the order
        given is kept. A list value gives a multi-valued attribute.
    type: dict
    required: true
  validity_days:
    description: Lifetime of a new CA certificate in days.
    type: int
    default: 3650
  path_length:
    description: basicConstraints pathLenConstraint; 0 means the CA signs only end-entity certificates.
    type: int
    default: 0
  renew_before_days:
    description: Replace the certificate when less than this many days of validity are left.
    type: int
    default: 30
  create_key:
    description:
      - Create the key file O(key.path) when it does not exist (O(key_type), O(curve), O(size)).
      - Token keys are never created here; use M(rolesanywhere.fleet.pkcs11_key).
    type: bool
    default: true
  key_type:
    description: Type of a key file created by O(create_key).
    type: str
    choices: [ec, rsa]
    default: ec
  curve:
    description: Curve of a created EC key.
    type: str
    choices: [secp256r1, secp384r1]
    default: secp384r1
  size:
    description: Size of a created RSA key.
    type: int
    choices: [2048, 3072, 4096]
    default: 3072
  force:
    description:
      - Issue a new CA certificate even when the current one is fine.
      - Also needed to replace an existing CA certificate of another key, or when the key file O(key.path) is
        missing (a new key means a new CA; certificates issued before no longer chain to it).
    type: bool
    default: false
notes:
  - Check mode and diff are supported; in check mode nothing is written (a token is only read).
seealso:
  - module: rolesanywhere.fleet.x509_issue
  - module: rolesanywhere.fleet.x509_check
"""

EXAMPLES = r"""
- name: CA with an encrypted P-384 key file
  rolesanywhere.fleet.x509_ca:
    path: /etc/ra-ca/ca.pem
    key:
      path: /etc/ra-ca/ca.key
      passphrase: "{{ vault_ca_passphrase }}"
    subject:
      O: Example
      CN: Example Roles Anywhere CA

- name: CA whose key lives on an HSM token
  rolesanywhere.fleet.x509_ca:
    path: /etc/ra-ca/ca.pem
    key:
      module_path: /usr/lib/softhsm/libsofthsm2.so
      token_label: ca-token
      pin_file: /etc/ra-ca/pin
      label: ca-key
    subject:
      CN: Example Roles Anywhere CA
"""

RETURN = r"""
certificate:
  description: The CA certificate (PEM), the CA bundle for the trust anchor.
  returned: success
  type: str
subject:
  description: Subject (RFC 4514).
  returned: success
  type: str
serial:
  description: Serial number, hex.
  returned: success
  type: str
not_after:
  description: End of validity (ISO 8601, UTC).
  returned: success
  type: str
subject_key_identifier:
  description: Subject key identifier, hex.
  returned: success
  type: str
key_created:
  description: Whether the key file was created (or would be, in check mode).
  returned: success
  type: bool
reasons:
  description: Why a new certificate was issued; empty when unchanged.
  returned: success
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rolesanywhere.fleet.plugins.module_utils._cryptography import require_cryptography
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _ca


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            key=dict(type="dict", required=True, no_log=False, options=_ca.CA_KEY_OPTIONS),
            subject=dict(type="dict", required=True),
            validity_days=dict(type="int", default=3650),
            path_length=dict(type="int", default=0),
            renew_before_days=dict(type="int", default=30),
            create_key=dict(type="bool", default=True),
            key_type=dict(type="str", choices=["ec", "rsa"], default="ec"),
            curve=dict(type="str", choices=["secp256r1", "secp384r1"], default="secp384r1"),
            size=dict(type="int", choices=[2048, 3072, 4096], default=3072),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    require_cryptography(module)
    p = module.params
    try:
        _ca.require_cryptography()
        result = ensure_ca(module, p)
    except _ca.CAError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


def ensure_ca(module, p):
    if p["validity_days"] <= p["renew_before_days"]:
        raise _ca.CAError("validity_days must be larger than renew_before_days, or the CA is renewed on every run.")
    if p["path_length"] < 0:
        raise _ca.CAError("path_length must be 0 or more.")
    _ca.check_output_directory(p["path"], module.check_mode)
    subject = _ca.build_name(p["subject"])
    source = _ca.key_source_from_options(p["key"])
    new_key = None
    changed = False
    if isinstance(source, _ca.FileKeySource):
        if not os.path.exists(source.path):
            if not p["create_key"]:
                raise _ca.CAError(f"CA key file {source.path} does not exist: create it or set create_key=true.")
            new_key = _ca.generate_key(p["key_type"], p["curve"], p["size"])
        elif _ca.file_mode_differs(source.path, _ca.KEY_MODE):
            changed = True
            if not module.check_mode:
                os.chmod(source.path, _ca.KEY_MODE)

    existing = _ca.read_certificate(p["path"])
    if new_key is not None and existing is not None and not p["force"]:
        # A mistyped key path must not silently replace a CA that certificates already chain to.
        raise _ca.CAError(
            f"{p['path']} holds a CA certificate but its key file {source.path} does not exist: restore the key "
            "or fix key.path; set force=true to start a new CA with a new key."
        )
    if new_key is not None:
        cert, reasons = _sign_and_write(module, p, subject, new_key, existing, new_key_file=source)
    else:
        with _ca.open_ca_key(source) as key:
            cert, reasons = _sign_and_write(module, p, subject, key, existing)
    changed = changed or bool(reasons)
    if not reasons and _ca.file_mode_differs(p["path"], _ca.CERT_MODE):
        changed = True
        if not module.check_mode:
            os.chmod(p["path"], _ca.CERT_MODE)
    summary = _ca.certificate_summary(cert)
    result = dict(
        changed=changed,
        certificate=_ca.pem(cert).decode(),
        subject=summary["subject"],
        serial=summary["serial"],
        not_after=summary["not_after"],
        subject_key_identifier=_ca.subject_key_identifier_hex(cert),
        key_created=new_key is not None,
        reasons=reasons,
    )
    if module._diff:
        result["diff"] = dict(before=_ca.certificate_summary(existing) if existing else {}, after=summary)
    return result


def _sign_and_write(module, p, subject, key, existing, new_key_file=None):
    """Keep ``existing`` or build a new CA certificate and write it (and ``key`` to ``new_key_file``).

    Returns the certificate in force and the reasons for a new one.
    """
    if existing is None:
        reasons = ["no CA certificate at path"]
    elif not _ca.same_public_key(existing.public_key(), key.public_key()) and not p["force"]:
        raise _ca.CAError(
            f"The CA certificate {p['path']} does not belong to the given CA key (public keys differ): fix the key "
            "option, or set force=true to start a new CA with this key (certificates issued before stop chaining)."
        )
    else:
        reasons = _ca.ca_certificate_differences(
            existing, key.public_key(), subject, p["path_length"], p["renew_before_days"])
    if p["force"] and not reasons:
        reasons = ["force"]
    if not reasons:
        return existing, reasons
    cert = _ca.build_ca_certificate(key, subject, p["validity_days"], p["path_length"])
    if not module.check_mode:
        if new_key_file is not None:
            _ca.write_file_atomic(
                new_key_file.path, _ca.private_key_pem(key, new_key_file.passphrase), _ca.KEY_MODE)
        _ca.write_file_atomic(p["path"], _ca.pem(cert), _ca.CERT_MODE)
    return cert, reasons


if __name__ == "__main__":
    main()
