#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: acmpca_certificate
short_description: Issue a certificate from a CSR with AWS Private CA, or revoke one by serial
version_added: 0.1.0
description:
  - With O(state=present), issues a certificate for a CSR (for example one signed on a PKCS#11 token) with
    AWS Private CA (ACM PCA), waits until it is issued and returns it with its chain. Only the CSR travels;
    no private key is involved.
  - Idempotent - when the current certificate (O(dest) or O(current_certificate)) already certifies the CSR's
    public key and subject, was issued by this CA and is valid for more than O(remaining_days), nothing is
    issued. Without either, every run issues a new certificate.
  - With O(state=absent), revokes the certificate given by O(serial) (or the one in O(dest) or
    O(current_certificate)). A certificate AWS reports as already revoked gives C(changed=false).
  - Check mode predicts the result without issuing or revoking.
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
extends_documentation_fragment:
  - rolesanywhere.fleet.aws
  - rolesanywhere.fleet.attributes
  - rolesanywhere.fleet.attributes.aws_group
options:
  certificate_authority_arn:
    description: ARN of the AWS Private CA.
    type: str
    required: true
  state:
    description: C(present) issues (when needed); C(absent) revokes.
    type: str
    choices: [present, absent]
    default: present
  csr:
    description: The CSR in PEM. Mutually exclusive with O(csr_path).
    type: str
  csr_path:
    description: Path of a PEM CSR on the controller.
    type: path
  template_arn:
    description:
      - Private CA certificate template. The default gives the extensions Roles Anywhere needs
        (CA:FALSE, digitalSignature, clientAuth).
    type: str
    default: arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1
  validity_days:
    description: Validity of the issued certificate in days.
    type: int
    default: 365
  signing_algorithm:
    description:
      - Signature algorithm the CA uses. Default - C(SHA256WITHECDSA) for an EC CA key,
        C(SHA256WITHRSA) for an RSA CA key (from the CA's key algorithm).
    type: str
    choices: [SHA256WITHECDSA, SHA384WITHECDSA, SHA512WITHECDSA, SHA256WITHRSA, SHA384WITHRSA, SHA512WITHRSA]
  dest:
    description:
      - Controller path of the certificate (PEM). Read to decide whether a new one is needed, written
        (mode 0644) when one is issued.
    type: path
  chain_dest:
    description: Controller path to write the CA chain (PEM) to.
    type: path
  current_certificate:
    description:
      - The certificate currently in use (PEM), when it lives elsewhere (for example on the host).
        Used like the content of O(dest), and instead of it when both are given.
    type: str
  remaining_days:
    description: Issue a new certificate when the current one expires within this many days.
    type: int
    default: 30
  subject:
    description:
      - The subject configured for this host (a mapping, or a list of one-entry mappings, as for
        M(rolesanywhere.fleet.pkcs11_csr)). A CSR asking for another subject is refused before anything is sent to
        AWS Private CA; omitted, the CSR's subject is taken as is.
    type: raw
  subject_alt_name:
    description:
      - The subjectAltName entries configured for this host (C(DNS:name), C(IP:address), ...); a CSR asking for
        other names is refused. V([]) allows none.
    type: list
    elements: str
  wait_timeout:
    description: Seconds to wait for the issued certificate.
    type: int
    default: 300
  serial:
    description:
      - Serial number of the certificate to revoke (hexadecimal, with or without colons). Default - the
        serial of the certificate in O(dest) or O(current_certificate).
    type: str
  revocation_reason:
    description: Reason recorded in the CA's CRL.
    type: str
    default: UNSPECIFIED
    choices: [UNSPECIFIED, KEY_COMPROMISE, CERTIFICATE_AUTHORITY_COMPROMISE, AFFILIATION_CHANGED, SUPERSEDED,
              CESSATION_OF_OPERATION, PRIVILEGE_WITHDRAWN, A_A_COMPROMISE]
notes:
  - moto's ACM PCA ignores templates other than C(EndEntityCertificate/V1) (the certificates it issues
    then carry no extensions), ignores the validity and always signs with an RSA-2048 CA key; AWS does not.
"""

EXAMPLES = r"""
- name: Certificate for the host's token-signed CSR, renewed 30 days before expiry
  rolesanywhere.fleet.acmpca_certificate:
    certificate_authority_arn: "{{ pca_arn }}"
    csr: "{{ host_csr }}"
    current_certificate: "{{ host_cert | default(omit) }}"
    validity_days: 90
  register: issued

- name: Revoke a certificate
  rolesanywhere.fleet.acmpca_certificate:
    certificate_authority_arn: "{{ pca_arn }}"
    serial: "3a:9f:00:12"
    revocation_reason: KEY_COMPROMISE
    state: absent
"""

RETURN = r"""
certificate:
  description: The certificate in PEM (the issued one, or the current one when it still fits).
  returned: state=present, not in check mode when a certificate would be issued
  type: str
certificate_chain:
  description: The CA chain in PEM.
  returned: state=present
  type: str
certificate_arn:
  description: ARN of the issued certificate.
  returned: when a certificate was issued
  type: str
serial:
  description: Serial number of the certificate, lower-case hexadecimal (as the own CA's database keeps it).
  returned: when known
  type: str
  sample: "3a9f0012"
not_after:
  description: End of validity (ISO 8601, UTC).
  returned: when known
  type: str
subject:
  description: Subject (RFC 4514).
  returned: state=present
  type: str
error:
  description: The AWS error code and message when the module fails on an AWS call.
  returned: failure
  type: dict
"""

import datetime
import os
import time

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
except ImportError:  # reported by AWSModule: _cryptography.require_cryptography
    pass

from ansible_collections.rolesanywhere.fleet.plugins.module_utils._aws import (
    AWSError,
    AWSModule,
    colon_hex,
    load_certificates,
)
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _csr
from ansible_collections.rolesanywhere.fleet.plugins.module_utils._ca import (
    CAError,
    check_requested_identity,
    load_csr,
    parse_serial,
    pem,
    same_public_key,
    serial_hex,
    write_file_atomic,
)

DEFAULT_TEMPLATE = "arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1"


def cert_view(cert):
    return {
        "serial": serial_hex(cert.serial_number),
        "subject": cert.subject.rfc4514_string(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def file_differs(path, content):
    try:
        with open(path) as fh:
            return fh.read() != content
    except FileNotFoundError:
        return True


class PrivateCAIssuer:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.pca = module.client("acm-pca")
        self.ca_arn = self.params["certificate_authority_arn"]

    def current_cert(self):
        pem = self.params["current_certificate"]
        if pem is None and self.params["dest"] and os.path.exists(self.params["dest"]):
            with open(self.params["dest"]) as fh:
                pem = fh.read()
        if not pem:
            return None
        try:
            return x509.load_pem_x509_certificate(pem.encode())
        except ValueError as exc:
            raise AWSError(f"the current certificate is not a PEM certificate ({exc})", "InvalidCertificate") from None

    def load_csr(self):
        data = self.params["csr"]
        if data is None:
            try:
                with open(self.params["csr_path"], "rb") as fh:
                    data = fh.read()
            except OSError as exc:
                raise AWSError(f"cannot read csr_path: {exc}", "InvalidInput") from None
        csr = load_csr(data, self.params["csr_path"] or "the csr option")
        if not csr.is_signature_valid:
            raise AWSError(
                "the CSR's signature does not verify; create the CSR again with the key it names", "InvalidInput"
            )
        try:
            subject = _csr.subject_name(self.params["subject"]) if self.params["subject"] is not None else None
            sans = (_csr.parse_subject_alt_names(self.params["subject_alt_name"])
                    if self.params["subject_alt_name"] is not None else None)
        except _csr.CSRError as exc:
            raise CAError(f"The configured subject is invalid: {exc}") from None
        check_requested_identity(csr, subject, sans)
        return csr, pem(csr)

    def ca_certificates(self):
        answer = self.pca.get_certificate_authority_certificate(CertificateAuthorityArn=self.ca_arn)
        chain = answer["Certificate"].strip() + "\n"
        if answer.get("CertificateChain"):
            chain += answer["CertificateChain"].strip() + "\n"
        return load_certificates(answer["Certificate"], "the CA certificate")[0], chain

    def still_fits(self, cert, csr, ca_cert):
        if not same_public_key(cert.public_key(), csr.public_key()) or cert.subject != csr.subject:
            return False
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (InvalidSignature, ValueError, TypeError):
            return False
        left = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
        return left > datetime.timedelta(days=self.params["remaining_days"])

    def signing_algorithm(self):
        if self.params["signing_algorithm"]:
            return self.params["signing_algorithm"]
        ca = self.pca.describe_certificate_authority(CertificateAuthorityArn=self.ca_arn)["CertificateAuthority"]
        key_algorithm = ca["CertificateAuthorityConfiguration"]["KeyAlgorithm"]
        return "SHA256WITHECDSA" if key_algorithm.startswith("EC_") else "SHA256WITHRSA"

    def issue(self, csr_pem):
        arn = self.pca.issue_certificate(
            CertificateAuthorityArn=self.ca_arn,
            Csr=csr_pem,
            SigningAlgorithm=self.signing_algorithm(),
            TemplateArn=self.params["template_arn"],
            Validity={"Value": self.params["validity_days"], "Type": "DAYS"},
        )["CertificateArn"]
        deadline = time.monotonic() + self.params["wait_timeout"]
        delay = 1.0
        while True:
            try:
                return arn, self.pca.get_certificate(CertificateAuthorityArn=self.ca_arn, CertificateArn=arn)
            except AWSError as exc:
                if exc.code != "RequestInProgressException" or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def present(self):
        if self.params["validity_days"] < 1:
            raise AWSError("validity_days must be at least 1", "InvalidInput")
        csr, csr_pem = self.load_csr()
        current = self.current_cert()
        ca_cert, chain = self.ca_certificates()
        before = cert_view(current) if current else {}
        result = {"changed": False}
        if current is not None and self.still_fits(current, csr, ca_cert):
            cert_pem = pem(current).decode()
            result.update(cert_view(current), certificate=cert_pem, certificate_chain=chain)
        elif self.module.check_mode:
            result.update(changed=True, subject=csr.subject.rfc4514_string(), certificate_chain=chain)
        else:
            arn, answer = self.issue(csr_pem)
            cert_pem = answer["Certificate"].strip() + "\n"
            issued = x509.load_pem_x509_certificate(cert_pem.encode())
            if answer.get("CertificateChain"):
                chain = answer["CertificateChain"].strip() + "\n"
            result.update(cert_view(issued), changed=True, certificate=cert_pem, certificate_chain=chain,
                          certificate_arn=arn)
        for option, key in (("dest", "certificate"), ("chain_dest", "certificate_chain")):
            if self.params[option] and key in result and file_differs(self.params[option], result[key]):
                result["changed"] = True
                if not self.module.check_mode:
                    write_file_atomic(self.params[option], result[key].encode(), 0o644)
        after = {k: result[k] for k in ("serial", "subject", "not_after") if k in result}
        return result, before, after

    def absent(self):
        serial = self.params["serial"]
        if serial is None:
            current = self.current_cert()
            if current is None:
                raise AWSError("state=absent needs serial, dest or current_certificate to know what to revoke",
                               "InvalidInput")
            number = current.serial_number
        else:
            number = parse_serial(serial)
        view = {"serial": serial_hex(number), "revoked": False}
        result = {"changed": True, "serial": view["serial"]}
        if not self.module.check_mode:
            try:
                self.pca.revoke_certificate(
                    CertificateAuthorityArn=self.ca_arn,
                    CertificateSerial=colon_hex(number),
                    RevocationReason=self.params["revocation_reason"],
                )
            except AWSError as exc:
                if exc.code != "RequestAlreadyProcessedException":
                    raise
                result["changed"] = False
        return result, view, dict(view, revoked=True)


def main():
    argument_spec = dict(
        certificate_authority_arn=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        csr=dict(type="str"),
        csr_path=dict(type="path"),
        template_arn=dict(type="str", default=DEFAULT_TEMPLATE),
        validity_days=dict(type="int", default=365),
        signing_algorithm=dict(
            type="str",
            choices=["SHA256WITHECDSA", "SHA384WITHECDSA", "SHA512WITHECDSA", "SHA256WITHRSA", "SHA384WITHRSA",
                     "SHA512WITHRSA"],
        ),
        dest=dict(type="path"),
        chain_dest=dict(type="path"),
        current_certificate=dict(type="str"),
        remaining_days=dict(type="int", default=30),
        subject=dict(type="raw"),
        subject_alt_name=dict(type="list", elements="str"),
        wait_timeout=dict(type="int", default=300),
        serial=dict(type="str"),
        revocation_reason=dict(
            type="str",
            default="UNSPECIFIED",
            choices=["UNSPECIFIED", "KEY_COMPROMISE", "CERTIFICATE_AUTHORITY_COMPROMISE", "AFFILIATION_CHANGED",
                     "SUPERSEDED", "CESSATION_OF_OPERATION", "PRIVILEGE_WITHDRAWN", "A_A_COMPROMISE"],
        ),
    )
    module = AWSModule(
        "acm-pca",
        argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("csr", "csr_path")],
        required_if=[("state", "present", ("csr", "csr_path"), True)],
    )
    issuer = PrivateCAIssuer(module)
    try:
        result, before, after = issuer.present() if module.params["state"] == "present" else issuer.absent()
    except AWSError as exc:
        module.fail_aws(exc)
    except CAError as exc:
        module.fail_json(msg=str(exc))
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
