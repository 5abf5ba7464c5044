#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: x509_issue
short_description: Issue an IAM Roles Anywhere client certificate from a CSR with the own CA
version_added: 0.1.0
description:
  - Signs a CSR (O(csr_path) or O(csr)) with the CA certificate O(ca_cert_path) and its key O(ca_key) (a file or
    a PKCS#11 token key) into O(path) (PEM, mode 0644).
  - The certificate follows the Roles Anywhere client rules; X.509 v3, a random 159-bit serial,
    basicConstraints CA:FALSE (critical), keyUsage digitalSignature (critical), extendedKeyUsage clientAuth,
    subject and authority key identifiers, SHA-384 for a P-384 CA key and SHA-256 otherwise. The subject and
    subjectAltName are copied from the CSR; no other requested extension is honoured.
  - Refused, with nothing written; a CSR whose signature does not verify, a CSR signed with SHA-1 or MD5, an
    RSA key under 2048 bits, a curve other than P-256/P-384, a CSR asking for CA:TRUE, a subject lacking an
    attribute of O(require_subject), a subject or subjectAltName other than O(subject) / O(subject_alt_name), a
    CSR with an empty subject and no subjectAltName, a malformed extension, a CA certificate that does not match
    the CA key or is expired.
  - When the CA certificate itself ends within O(renew_before_days), the module warns instead of issuing a new host
    certificate on every run (host certificates cannot outlive the CA).
  - Each issued certificate is recorded in the CA database O(database) (serial, subject, not_after, status) for
    CRLs and reports, right after its file is written and before it leaves the CA host. A certificate of this CA at
    O(path) that the database lacks (a run stopped between the two writes) is recorded by the next run, so the
    database never holds a certificate that exists nowhere and never misses one that exists.
  - Unchanged when O(path) already holds a certificate from this CA for the CSR's public key, subject and
    subjectAltName, not revoked, with more than O(renew_before_days) left.
  - O(requests) issues a batch (for example every host of a play) in one run on the CA host, each request
    checked and issued exactly as a single one; a failed request is reported in RV(results) without stopping
    the others.
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
    description: Where the issued certificate (PEM) is written. Its directory must exist. Required without O(requests).
    type: path
  csr_path:
    description: CSR file (PEM or DER). Exactly one of O(csr_path) and O(csr).
    type: path
  csr:
    description: CSR as PEM text, for example the RV(rolesanywhere.fleet.pkcs11_csr#module:csr) result.
    type: str
  ca_cert_path:
    description: The CA certificate (PEM), as written by M(rolesanywhere.fleet.x509_ca).
    type: path
    required: true
  database:
    description:
      - CA database (JSON, mode 0600). Default; next to O(ca_cert_path), C(ca.pem) -> C(ca.db.json).
    type: path
  validity_days:
    description: Lifetime of the certificate in days; capped at the CA certificate's own end of validity.
    type: int
    default: 365
  renew_before_days:
    description: Issue a new certificate when less than this many days of validity are left.
    type: int
    default: 30
  require_subject:
    description: Subject attributes the CSR must carry, e.g. C([CN, OU]).
    type: list
    elements: str
    default: []
  subject:
    description:
      - The subject configured for this host (inventory), as for M(rolesanywhere.fleet.pkcs11_csr) (a mapping, or a
        list of one-entry mappings). A CSR asking for any other subject (another OU, another host's CN) is refused,
        since the CA does not trust the host to name itself. Omitted, the CSR's subject is taken as is.
    type: raw
  subject_alt_name:
    description:
      - The subjectAltName entries configured for this host (C(DNS:name), C(IP:address), C(URI:uri), C(email:a@b));
        a CSR asking for other names is refused. V([]) allows none. Omitted, the CSR's names are taken as is.
    type: list
    elements: str
  force:
    description: Issue a new certificate even when the current one is fine.
    type: bool
    default: false
  requests:
    description:
      - Several certificates in one run; each entry takes O(path), O(csr) or O(csr_path), O(subject),
        O(subject_alt_name), and may override O(validity_days), O(renew_before_days), O(require_subject) and
        O(force); the CA options apply to all. Excludes O(path), O(csr), O(csr_path), O(subject) and
        O(subject_alt_name) at the top level.
    type: list
    elements: dict
    suboptions:
      path:
        description: As O(path).
        type: path
        required: true
      csr:
        description: As O(csr).
        type: str
      csr_path:
        description: As O(csr_path).
        type: path
      subject:
        description: As O(subject).
        type: raw
      subject_alt_name:
        description: As O(subject_alt_name).
        type: list
        elements: str
      validity_days:
        description: As O(validity_days), for this request.
        type: int
      renew_before_days:
        description: As O(renew_before_days), for this request.
        type: int
      require_subject:
        description: As O(require_subject), for this request.
        type: list
        elements: str
      force:
        description: As O(force), for this request.
        type: bool
notes:
  - In check mode, when O(ca_cert_path) does not exist yet (an earlier task of the run would create it), the
    module reports a change and returns only RV(reasons).
  - Check mode and diff are supported; in check mode nothing is written and the database is not touched.
seealso:
  - module: rolesanywhere.fleet.x509_ca
  - module: rolesanywhere.fleet.x509_crl
  - module: rolesanywhere.fleet.pkcs11_csr
"""

EXAMPLES = r"""
- name: Issue the host's certificate from its token-signed CSR
  rolesanywhere.fleet.x509_issue:
    csr: "{{ host_csr.csr }}"
    path: /etc/ra-ca/issued/{{ inventory_hostname }}.pem
    ca_cert_path: /etc/ra-ca/ca.pem
    ca_key:
      path: /etc/ra-ca/ca.key
      passphrase: "{{ vault_ca_passphrase }}"
    require_subject: [CN, OU]
    subject: {O: Example, OU: fleet, CN: "{{ inventory_hostname }}"}
    subject_alt_name: []
    validity_days: 90
    renew_before_days: 30
  delegate_to: localhost
"""

RETURN = r"""
certificate:
  description: The certificate (PEM).
  returned: success, unless O(ca_cert_path) does not exist yet in check mode
  type: str
serial:
  description: Serial number, lowercase hex (the default Roles Anywhere session name).
  returned: success, unless O(ca_cert_path) does not exist yet in check mode
  type: str
serial_decimal:
  description: Serial number in decimal (the C(Credential=) value of a SigV4-X509 request).
  returned: success, unless O(ca_cert_path) does not exist yet in check mode
  type: str
subject:
  description: Subject (RFC 4514).
  returned: success, unless O(ca_cert_path) does not exist yet in check mode
  type: str
not_after:
  description: End of validity (ISO 8601, UTC).
  returned: success, unless O(ca_cert_path) does not exist yet in check mode
  type: str
database:
  description: Path of the CA database.
  returned: success, unless O(ca_cert_path) does not exist yet in check mode
  type: str
lock_wait_seconds:
  description: How long this run waited for the CA database lock (other issuers at work on the same CA).
  returned: success, unless O(ca_cert_path) does not exist yet in check mode
  type: float
reasons:
  description: Why a new certificate was issued; empty when unchanged.
  returned: success, without O(requests)
  type: list
  elements: str
results:
  description:
    - With O(requests), one entry per request in order; the single-request return values plus C(path), C(changed),
      and C(refused) with C(msg) for a request that was refused.
  returned: with O(requests)
  type: list
  elements: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rolesanywhere.fleet.plugins.module_utils._cryptography import require_cryptography
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _ca
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _csr
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _x509_rules as rules


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path"),
            csr_path=dict(type="path"),
            csr=dict(type="str"),
            ca_cert_path=dict(type="path", required=True),
            ca_key=dict(type="dict", required=True, no_log=False, options=_ca.CA_KEY_OPTIONS),
            database=dict(type="path"),
            validity_days=dict(type="int", default=365),
            renew_before_days=dict(type="int", default=30),
            require_subject=dict(type="list", elements="str", default=[]),
            subject=dict(type="raw"),
            subject_alt_name=dict(type="list", elements="str"),
            force=dict(type="bool", default=False),
            requests=dict(type="list", elements="dict", options=REQUEST_OPTIONS,
                          mutually_exclusive=[("csr_path", "csr")], required_one_of=[("csr_path", "csr")]),
        ),
        mutually_exclusive=[("csr_path", "csr", "requests"), ("path", "requests"), ("subject", "requests"),
                            ("subject_alt_name", "requests")],
        required_one_of=[("csr_path", "csr", "requests")],
        required_by={"csr": "path", "csr_path": "path"},
        supports_check_mode=True,
    )
    require_cryptography(module)
    try:
        _ca.require_cryptography()
        if module.params["requests"] is None:
            result = issue(module, module.params)
        else:
            result = issue_batch(module, module.params)
    except _ca.CAError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


REQUEST_OPTIONS = dict(
    path=dict(type="path", required=True),
    csr=dict(type="str"),
    csr_path=dict(type="path"),
    subject=dict(type="raw"),
    subject_alt_name=dict(type="list", elements="str"),
    validity_days=dict(type="int"),
    renew_before_days=dict(type="int"),
    require_subject=dict(type="list", elements="str"),
    force=dict(type="bool"),
)


def issue_batch(module, p):
    """Every request through issue(), the same checks as a single run; one refusal does not stop the others."""
    results = []
    for request in p["requests"]:
        try:
            result = issue(module, dict(p, **{name: value for name, value in request.items() if value is not None}))
        except _ca.CAError as exc:
            # Not "failed": Ansible would fail the whole task from one item of a "results" list.
            result = dict(changed=False, refused=True, msg=str(exc))
        results.append(dict(result, path=request["path"]))
    return dict(changed=any(r["changed"] for r in results), results=results)


def expected_identity(p):
    """The subject and names configured for the host, as x509 objects (None: not enforced)."""
    try:
        subject = _csr.subject_name(p["subject"]) if p["subject"] is not None else None
        sans = _csr.parse_subject_alt_names(p["subject_alt_name"]) if p["subject_alt_name"] is not None else None
    except _csr.CSRError as exc:
        raise _ca.CAError(f"The configured subject is invalid: {exc}") from None
    return subject, sans


def _read_csr(p):
    if p["csr"] is not None:
        return _ca.load_csr(p["csr"], "the csr option")
    try:
        with open(p["csr_path"], "rb") as fh:
            return _ca.load_csr(fh.read(), p["csr_path"])
    except OSError as exc:
        raise _ca.CAError(f"Cannot read csr_path {p['csr_path']}: {exc.strerror}.") from None


def issue(module, p):
    _ca.check_validity_days(p["validity_days"], p["renew_before_days"])
    if p["validity_days"] <= p["renew_before_days"]:
        raise _ca.CAError("validity_days must be larger than renew_before_days, or the certificate is reissued on "
                          "every run.")
    unknown = [a for a in p["require_subject"] if a not in rules.SUBJECT_ATTRIBUTES]
    if unknown:
        raise _ca.CAError(f"require_subject has unknown attributes {unknown}; use {', '.join(rules.SUBJECT_ATTRIBUTES)}.")
    _ca.check_output_directory(p["path"], module.check_mode)
    csr = _read_csr(p)
    _ca.check_csr_or_fail(csr, p["require_subject"])
    expected_subject, expected_sans = expected_identity(p)
    _ca.check_requested_identity(csr, expected_subject, expected_sans)
    ca_cert = _ca.read_ca_certificate(p["ca_cert_path"], p["ca_key"], module.check_mode)
    if ca_cert is None:
        return dict(changed=True, reasons=[f"the CA certificate {p['ca_cert_path']} does not exist yet"])
    database_path = p["database"] or _ca.default_database_path(p["ca_cert_path"])
    source = _ca.key_source_from_options(p["ca_key"])
    existing = _ca.read_certificate(p["path"])

    with _ca.open_ca_key(source) as ca_key:
        _ca.check_ca_pair(ca_cert, ca_key.public_key(), p["ca_cert_path"])
        with _ca.locked_database(database_path, lock=not module.check_mode) as database:
            recorded = existing is not None and database.record_unrecorded(existing, ca_cert, save=not module.check_mode)
            if existing is None:
                reasons = ["no certificate at path"]
            else:
                reasons = _ca.issued_certificate_differences(
                    existing, ca_cert, csr, p["renew_before_days"], database)
            if p["force"] and not reasons:
                reasons = ["force"]
            cert = existing
            if reasons:
                cert = _ca.issue_certificate(ca_cert, ca_key, csr, p["validity_days"], p["require_subject"],
                                             expected_subject=expected_subject, expected_sans=expected_sans)
                if not module.check_mode:
                    # The file first, then its record (both before the certificate leaves the CA host): a run
                    # killed in between leaves a certificate the next run records, never a record of nothing.
                    _ca.write_file_atomic(p["path"], _ca.pem(cert), _ca.CERT_MODE)
                    database.record_issued(cert)
                    database.save()

    changed = bool(reasons)
    if not reasons and _ca.file_mode_differs(p["path"], _ca.CERT_MODE):
        changed = True
        if not module.check_mode:
            os.chmod(p["path"], _ca.CERT_MODE)
    if recorded:
        changed = True
        reasons = ["the certificate at path was not in the CA database (a stopped run): recorded"] + reasons

    summary = _ca.certificate_summary(cert)
    result = dict(
        changed=changed,
        certificate=_ca.pem(cert).decode(),
        serial=summary["serial"],
        serial_decimal=str(cert.serial_number),
        subject=summary["subject"],
        not_after=summary["not_after"],
        database=database_path,
        reasons=reasons,
        lock_wait_seconds=round(database.lock_wait_seconds, 4),
    )
    warning = _ca.ca_expiry_warning(ca_cert, p["renew_before_days"])
    if warning:
        module.warn(warning)
    if module._diff:
        result["diff"] = dict(before=_ca.certificate_summary(existing) if existing else {}, after=summary)
    return result


if __name__ == "__main__":
    main()
