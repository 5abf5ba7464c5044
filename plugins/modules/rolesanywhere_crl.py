#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: rolesanywhere_crl
short_description: Import or update a certificate revocation list for an IAM Roles Anywhere trust anchor
version_added: 0.1.0
description:
  - Imports a CRL (PEM or DER) into IAM Roles Anywhere for a trust anchor, replaces its content when the
    CRL changed (for example after a revocation or a scheduled re-issue), enables or disables it, or deletes
    it. The CRL is identified by its name.
  - Roles Anywhere checks only CRLs imported this way (no CRL distribution point or OCSP retrieval), so
    re-import the CA's CRL on a schedule, before its next update time.
  - Before any change, verifies with the trust anchor's CA certificates (its bundle, or the AWS Private CA's
    certificate) that the CA signed the CRL; a CRL from another CA fails with a clear message.
  - Check mode predicts the result without changing anything; diff shows issuer, update times, CRL number,
    revoked serials and fingerprint before and after.
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
extends_documentation_fragment:
  - rolesanywhere.fleet.aws
  - rolesanywhere.fleet.aws.tags
  - rolesanywhere.fleet.attributes
  - rolesanywhere.fleet.attributes.aws_group
options:
  name:
    description: Name of the CRL in Roles Anywhere (the module's key).
    type: str
    required: true
  state:
    description: C(present) imports or updates; C(absent) deletes.
    type: str
    choices: [present, absent]
    default: present
  trust_anchor_arn:
    description: The trust anchor whose CA issued the CRL. Required with O(state=present).
    type: str
  crl:
    description: The CRL in PEM. Mutually exclusive with O(crl_path).
    type: str
  crl_path:
    description: Controller path of the CRL, PEM or DER.
    type: path
  enabled:
    description: Whether Roles Anywhere uses the CRL.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Import the own CA's CRL
  rolesanywhere.fleet.rolesanywhere_crl:
    name: fleet-ca-crl
    trust_anchor_arn: "{{ anchor.trust_anchor.trust_anchor_arn }}"
    crl_path: /etc/fleet-ca/crl.pem
"""

RETURN = r"""
crl:
  description: The CRL after the run (predicted in check mode; empty when absent).
  returned: always
  type: dict
  contains:
    crl_arn:
      description: ARN (null in check mode for a new CRL).
      type: str
    crl_id:
      description: ID.
      type: str
    name:
      description: Name.
      type: str
    trust_anchor_arn:
      description: The trust anchor.
      type: str
    enabled:
      description: Whether it is enabled.
      type: bool
    issuer:
      description: CRL issuer (RFC 4514).
      type: str
    this_update:
      description: Issue time (ISO 8601).
      type: str
    next_update:
      description: Next scheduled update (ISO 8601), if present.
      type: str
    crl_number:
      description: The CRL number extension, if present.
      type: int
    revoked_serials:
      description: Revoked serial numbers, lower-case hexadecimal, sorted.
      type: list
      elements: str
    sha256:
      description: SHA-256 fingerprint of the DER encoding.
      type: str
    tags:
      description: Tags.
      type: dict
error:
  description: The AWS error code and message when the module fails on an AWS call.
  returned: failure
  type: dict
"""

import hashlib

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
except ImportError:  # reported by AWSModule: _cryptography.require_cryptography
    pass

from ansible_collections.rolesanywhere.fleet.plugins.module_utils._ca import serial_hex
from ansible_collections.rolesanywhere.fleet.plugins.module_utils._aws import (
    TAGS_ARGSPEC,
    AWSError,
    AWSModule,
    Resource,
    check_crl_issuer,
    desired_tags,
    find_by_name,
    load_certificates,
    load_crl,
    rolesanywhere_tags,
    run_resource_module,
    set_enabled,
    sync_rolesanywhere_tags,
    tag_dict_to_list,
)


def crl_view(crl):
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = None
    der = crl.public_bytes(serialization.Encoding.DER)
    return {
        "issuer": crl.issuer.rfc4514_string(),
        "this_update": crl.last_update_utc.isoformat(),
        "next_update": crl.next_update_utc.isoformat() if crl.next_update_utc else None,
        "crl_number": number,
        "revoked_serials": sorted(serial_hex(r.serial_number) for r in crl),
        "sha256": hashlib.sha256(der).hexdigest(),
    }


class Crl(Resource):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.ra = module.client()

    def read_crl(self):
        if self.params["crl"] is not None:
            return load_crl(self.params["crl"])
        try:
            with open(self.params["crl_path"], "rb") as fh:
                return load_crl(fh.read(), self.params["crl_path"])
        except OSError as exc:
            raise AWSError(f"cannot read crl_path: {exc}", "InvalidInput") from None

    def anchor_ca_certificates(self, anchor_arn):
        try:
            anchor = self.ra.get_trust_anchor(trustAnchorId=anchor_arn)["trustAnchor"]
        except AWSError as exc:
            if exc.code in ("ResourceNotFoundException", "ValidationException"):
                raise AWSError(f"trust_anchor_arn {anchor_arn} does not name a trust anchor: {exc}", exc.code) from None
            raise
        data = anchor["source"]["sourceData"]
        if data.get("x509CertificateData"):
            return anchor, load_certificates(data["x509CertificateData"], "the trust anchor's bundle")
        answer = self.module.client("acm-pca").get_certificate_authority_certificate(
            CertificateAuthorityArn=data["acmPcaArn"]
        )
        pem = answer["Certificate"] + "\n" + (answer.get("CertificateChain") or "")
        return anchor, load_certificates(pem, "the Private CA's certificate")

    def validate(self):
        self.crl = self.read_crl()
        anchor, ca_certs = self.anchor_ca_certificates(self.params["trust_anchor_arn"])
        self.anchor_arn = anchor["trustAnchorArn"]
        check_crl_issuer(self.crl, ca_certs, anchor["name"])

    def describe(self):
        record = find_by_name(self.ra, "list_crls", "crls", self.params["name"], "CRL")
        if record is None:
            return None
        return dict(
            crl_view(load_crl(record["crlData"], "the stored CRL")),
            crl_arn=record["crlArn"],
            crl_id=record["crlId"],
            name=record["name"],
            trust_anchor_arn=record["trustAnchorArn"],
            enabled=record.get("enabled", False),
            tags=rolesanywhere_tags(self.ra, record["crlArn"]),
        )

    def desired(self, current):
        current = current or {}
        if current and current["trust_anchor_arn"] != self.anchor_arn:
            raise AWSError(
                f"CRL {self.params['name']!r} belongs to trust anchor {current['trust_anchor_arn']}; a CRL cannot move "
                "to another trust anchor: delete it (state=absent) or use another name",
                "ValidationException",
            )
        return dict(
            crl_view(self.crl),
            crl_arn=current.get("crl_arn"),
            crl_id=current.get("crl_id"),
            name=self.params["name"],
            trust_anchor_arn=self.anchor_arn,
            enabled=self.params["enabled"],
            tags=desired_tags(current.get("tags"), self.params["tags"], self.params["purge_tags"]),
        )

    def pem(self):
        return self.crl.public_bytes(serialization.Encoding.PEM)

    def create(self, desired):
        self.ra.import_crl(
            name=desired["name"],
            crlData=self.pem(),
            trustAnchorArn=self.anchor_arn,
            enabled=desired["enabled"],
            tags=tag_dict_to_list(desired["tags"]),
        )

    def update(self, current, desired):
        if current["sha256"] != desired["sha256"]:
            self.ra.update_crl(crlId=current["crl_id"], crlData=self.pem())
        if current["enabled"] != desired["enabled"]:
            set_enabled(self.ra, "crl", "crlId", current["crl_id"], desired["enabled"])
        sync_rolesanywhere_tags(self.ra, current["crl_arn"], current["tags"], desired["tags"])

    def delete(self, current):
        self.ra.delete_crl(crlId=current["crl_id"])


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        trust_anchor_arn=dict(type="str"),
        crl=dict(type="str"),
        crl_path=dict(type="path"),
        enabled=dict(type="bool", default=True),
        **TAGS_ARGSPEC,
    )
    module = AWSModule(
        "rolesanywhere",
        argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("crl", "crl_path")],
        required_if=[("state", "present", ("trust_anchor_arn",)), ("state", "present", ("crl", "crl_path"), True)],
    )
    run_resource_module(module, Crl(module), "crl")


if __name__ == "__main__":
    main()
