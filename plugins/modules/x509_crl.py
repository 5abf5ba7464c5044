#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: x509_crl
short_description: Revoke certificates of the own CA and write its CRL
version_added: 0.1.0
description:
  - Marks the serials in O(revoke) revoked in the CA database and writes a CRL (PEM, mode 0644) to O(path),
    signed by the CA key O(ca_key) (a file or a PKCS#11 token key), listing every revoked certificate of the
    database, with a CRL number and an authority key identifier.
  - IAM Roles Anywhere checks only CRLs imported into it (ImportCrl); import this CRL after each change.
  - Unchanged when the CRL at O(path) is signed by this CA, lists exactly the revoked certificates (with their
    reasons) and its nextUpdate is more than O(renew_before_days) away.
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
requirements:
  - cryptography >= 42
  - python-pkcs11 (only for a CA key on a token)
extends_documentation_fragment:
  - rolesanywhere.fleet.ca_key.ca_key_option
  - rolesanywhere.fleet.attributes
options:
  path:
    description: Where the CRL (PEM) is written. Its directory must exist.
    type: path
    required: true
  ca_cert_path:
    description: The CA certificate (PEM).
    type: path
    required: true
  database:
    description: CA database (JSON). Default; next to O(ca_cert_path), C(ca.pem) -> C(ca.db.json).
    type: path
  revoke:
    description:
      - Serials to mark revoked, hex as in the database and in RV(rolesanywhere.fleet.x509_issue#module:serial)
        (C(0x) and colons allowed). Serials this CA did not issue are refused.
    type: list
    elements: str
    default: []
  reason:
    description: Revocation reason recorded for the serials of O(revoke).
    type: str
    default: unspecified
    choices: [unspecified, key_compromise, ca_compromise, affiliation_changed, superseded,
              cessation_of_operation, certificate_hold, privilege_withdrawn, aa_compromise]
  next_update_days:
    description: Days from now to the CRL's nextUpdate.
    type: int
    default: 7
  renew_before_days:
    description: Write a new CRL when its nextUpdate is less than this many days away.
    type: int
    default: 2
  force:
    description: Write a new CRL even when the current one is fine.
    type: bool
    default: false
notes:
  - Check mode and diff are supported; in check mode neither the database nor the CRL is written.
seealso:
  - module: rolesanywhere.fleet.x509_issue
"""

EXAMPLES = r"""
- name: Revoke a host's certificate and publish the CRL
  rolesanywhere.fleet.x509_crl:
    path: /etc/ra-ca/ca.crl
    ca_cert_path: /etc/ra-ca/ca.pem
    ca_key:
      path: /etc/ra-ca/ca.key
      passphrase: "{{ vault_ca_passphrase }}"
    revoke:
      - "{{ issued.serial }}"
    reason: key_compromise
"""

RETURN = r"""
crl:
  description: The CRL (PEM).
  returned: success, unless O(ca_cert_path) does not exist yet in check mode
  type: str
revoked:
  description: Serials (hex) the CRL lists.
  returned: success, unless O(ca_cert_path) does not exist yet in check mode
  type: list
  elements: str
newly_revoked:
  description: Serials of O(revoke) that were not revoked before.
  returned: success, unless O(ca_cert_path) does not exist yet in check mode
  type: list
  elements: str
next_update:
  description: nextUpdate of the CRL (ISO 8601, UTC).
  returned: success, unless O(ca_cert_path) does not exist yet in check mode
  type: str
crl_number:
  description: The CRL number.
  returned: success, unless O(ca_cert_path) does not exist yet in check mode
  type: int
reasons:
  description: Why a new CRL was written; empty when unchanged.
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
            ca_cert_path=dict(type="path", required=True),
            ca_key=dict(type="dict", required=True, no_log=False, options=_ca.CA_KEY_OPTIONS),
            database=dict(type="path"),
            revoke=dict(type="list", elements="str", default=[]),
            reason=dict(type="str", default="unspecified", choices=list(_ca.REVOCATION_REASONS)),
            next_update_days=dict(type="int", default=7),
            renew_before_days=dict(type="int", default=2),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    require_cryptography(module)
    try:
        _ca.require_cryptography()
        result = publish(module, module.params)
    except _ca.CAError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


def publish(module, p):
    if p["next_update_days"] <= p["renew_before_days"]:
        raise _ca.CAError("next_update_days must be larger than renew_before_days, or the CRL is rewritten on every "
                          "run.")
    _ca.check_output_directory(p["path"], module.check_mode)
    serials = [_ca.parse_serial(text) for text in p["revoke"]]
    ca_cert = _ca.read_ca_certificate(p["ca_cert_path"], p["ca_key"], module.check_mode)
    if ca_cert is None:
        return dict(changed=True, reasons=[f"the CA certificate {p['ca_cert_path']} does not exist yet"])
    database_path = p["database"] or _ca.default_database_path(p["ca_cert_path"])
    existing = _ca.read_crl(p["path"])
    source = _ca.key_source_from_options(p["ca_key"])

    with _ca.open_ca_key(source) as ca_key:
        _ca.check_ca_pair(ca_cert, ca_key.public_key(), p["ca_cert_path"])
        with _ca.locked_database(database_path, lock=not module.check_mode) as database:
            newly_revoked = [_ca.serial_hex(s) for s in serials if database.revoke(s, p["reason"])]
            if existing is None:
                reasons = ["no CRL at path"]
            else:
                reasons = _ca.crl_differences(existing, ca_cert, database.revoked(), p["renew_before_days"])
            if p["force"] and not reasons:
                reasons = ["force"]
            crl = existing
            if reasons:
                crl = _ca.build_crl(ca_cert, ca_key, database.revoked(), p["next_update_days"],
                                    database.next_crl_number())
            changed = bool(reasons or newly_revoked)
            if not module.check_mode and changed:
                database.save()
                if reasons:
                    _ca.write_file_atomic(p["path"], _ca.pem(crl), _ca.CERT_MODE)

    if not reasons and _ca.file_mode_differs(p["path"], _ca.CERT_MODE):
        changed = True
        if not module.check_mode:
            os.chmod(p["path"], _ca.CERT_MODE)

    summary = _ca.crl_summary(crl)
    result = dict(
        changed=changed,
        crl=_ca.pem(crl).decode(),
        revoked=summary["revoked"],
        newly_revoked=newly_revoked,
        next_update=summary["next_update"],
        crl_number=summary["crl_number"],
        reasons=reasons,
    )
    if module._diff:
        result["diff"] = dict(before=_ca.crl_summary(existing) if existing else {}, after=summary)
    return result


if __name__ == "__main__":
    main()
