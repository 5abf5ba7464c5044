#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: x509_check
short_description: Check a certificate against the IAM Roles Anywhere rules
version_added: 0.1.0
description:
  - Reads a certificate (O(path) or O(content)) and reports every IAM Roles Anywhere rule it breaks, for an
    end-entity (O(role=client)) or a CA certificate (O(role=ca)). Each violation names the rule (a stable id),
    what is wrong and the fix. Never changes anything.
  - Client rules; X.509 v3, basicConstraints CA:FALSE (critical), keyUsage digitalSignature (critical),
    extendedKeyUsage clientAuth (warning only), SHA-256 or stronger signature, RSA of at least 2048 bits or EC
    P-256/P-384, authority key identifier, subject key identifier (warning), within its validity period.
  - CA rules; X.509 v3, basicConstraints CA:TRUE (critical), keyUsage keyCertSign, cRLSign and digitalSignature
    (critical), SHA-256 or stronger, key sizes and curves as above, subject key identifier, validity.
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
requirements:
  - cryptography >= 42
options:
  path:
    description: Certificate file (PEM or DER). Exactly one of O(path) and O(content).
    type: path
  content:
    description: Certificate as PEM text.
    type: str
  role:
    description: Which rules apply.
    type: str
    choices: [client, ca]
    default: client
  ca_cert_path:
    description: Also check that the certificate was issued (signed) by this CA certificate.
    type: path
seealso:
  - module: rolesanywhere.fleet.x509_issue
  - module: rolesanywhere.fleet.x509_ca
extends_documentation_fragment:
  - rolesanywhere.fleet.attributes.no_diff
"""

EXAMPLES = r"""
- name: Check the host certificate
  rolesanywhere.fleet.x509_check:
    path: /etc/rolesanywhere/cert.pem
    ca_cert_path: /etc/rolesanywhere/ca.pem
  register: cert_check

- name: Stop when Roles Anywhere would reject it
  ansible.builtin.assert:
    that: cert_check.ok
    fail_msg: "{{ cert_check.violations | map(attribute='message') | join('; ') }}"
"""

RETURN = r"""
ok:
  description: True when no rule of severity C(error) is broken (warnings allowed).
  returned: success
  type: bool
violations:
  description: Every rule broken.
  returned: success
  type: list
  elements: dict
  contains:
    rule:
      description: Stable rule id, e.g. C(basic_constraints_ca_false), C(signature_hash), C(rsa_key_size).
      type: str
    message:
      description: What is wrong.
      type: str
    fix:
      description: How to fix it.
      type: str
    severity:
      description: C(error) (Roles Anywhere or the collection rejects it) or C(warning).
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
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rolesanywhere.fleet.plugins.module_utils._cryptography import require_cryptography
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _ca
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _x509_rules as rules


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path"),
            content=dict(type="str"),
            role=dict(type="str", choices=list(rules.ROLES), default="client"),
            ca_cert_path=dict(type="path"),
        ),
        mutually_exclusive=[("path", "content")],
        required_one_of=[("path", "content")],
        supports_check_mode=True,
    )
    require_cryptography(module)
    p = module.params
    try:
        _ca.require_cryptography()
        cert = _ca.load_certificate(p["content"].encode() if p["content"] is not None else p["path"])
        violations = rules.check_certificate(cert, p["role"])
        if p["ca_cert_path"]:
            ca_cert = _ca.load_certificate(p["ca_cert_path"])
            violations += rules.check_issued_by(cert, ca_cert)
    except _ca.CAError as exc:
        module.fail_json(msg=str(exc))
    summary = _ca.certificate_summary(cert)
    module.exit_json(
        changed=False,
        ok=not rules.errors(violations),
        violations=[v.as_dict() for v in violations],
        subject=summary["subject"],
        serial=summary["serial"],
        not_after=summary["not_after"],
    )


if __name__ == "__main__":
    main()
