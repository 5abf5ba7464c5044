#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: rolesanywhere_trust_anchor
short_description: IAM Roles Anywhere trust anchor from a CA bundle or an AWS Private CA
version_added: 0.1.0
description:
  - Creates, updates or deletes an IAM Roles Anywhere trust anchor, identified by its name.
  - The source is either the own CA's certificate bundle (PEM, C(CERTIFICATE_BUNDLE)) or an AWS Private CA
    (C(AWS_ACM_PCA)). Also manages enabled, expiry notification settings and tags.
  - Check mode predicts the result without changing anything; diff shows the trust anchor before and after
    (certificates by subject and SHA-256 fingerprint).
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
extends_documentation_fragment:
  - rolesanywhere.fleet.aws
  - rolesanywhere.fleet.aws.tags
  - rolesanywhere.fleet.attributes
  - rolesanywhere.fleet.attributes.aws_group
options:
  name:
    description: Name of the trust anchor (the module's key; names must be unique in the region).
    type: str
    required: true
  state:
    description: C(present) creates or updates; C(absent) deletes.
    type: str
    choices: [present, absent]
    default: present
  certificate_bundle:
    description:
      - PEM certificates of the CA (root and intermediates, at most 8000 characters). Each must be a CA
        certificate (basicConstraints CA:TRUE).
      - Mutually exclusive with O(acm_pca_arn); one of them is required with O(state=present).
    type: str
  acm_pca_arn:
    description: ARN of an AWS Private CA to trust.
    type: str
  enabled:
    description: Whether the trust anchor accepts authentication.
    type: bool
    default: true
  notification_settings:
    description:
      - Expiry notifications to set. Events not listed keep their settings (AWS default - enabled, 45 days).
    type: list
    elements: dict
    suboptions:
      event:
        description: The event.
        type: str
        required: true
        choices: [CA_CERTIFICATE_EXPIRY, END_ENTITY_CERTIFICATE_EXPIRY]
      enabled:
        description: Send the notification.
        type: bool
        default: true
      threshold:
        description: Days before expiry to notify (1..360).
        type: int
        default: 45
      channel:
        description: Notification channel.
        type: str
        choices: [ALL]
        default: ALL
"""

EXAMPLES = r"""
- name: Trust anchor for the own CA
  rolesanywhere.fleet.rolesanywhere_trust_anchor:
    name: fleet-ca
    certificate_bundle: "{{ lookup('ansible.builtin.file', '/etc/fleet-ca/ca.pem') }}"
    notification_settings:
      - event: CA_CERTIFICATE_EXPIRY
        threshold: 90
  register: anchor

- name: Trust anchor for an AWS Private CA
  rolesanywhere.fleet.rolesanywhere_trust_anchor:
    name: fleet-pca
    acm_pca_arn: "{{ pca_arn }}"
"""

RETURN = r"""
trust_anchor:
  description: The trust anchor after the run (predicted in check mode; empty when absent).
  returned: always
  type: dict
  contains:
    trust_anchor_arn:
      description: ARN (null in check mode for a new trust anchor).
      type: str
    trust_anchor_id:
      description: ID.
      type: str
    name:
      description: Name.
      type: str
    source_type:
      description: C(CERTIFICATE_BUNDLE) or C(AWS_ACM_PCA).
      type: str
    certificates:
      description: The bundle's certificates (subject, sha256, not_after); empty for C(AWS_ACM_PCA).
      type: list
      elements: dict
    acm_pca_arn:
      description: The Private CA, for C(AWS_ACM_PCA).
      type: str
    enabled:
      description: Whether it is enabled.
      type: bool
    notification_settings:
      description: Notification settings by event (enabled, threshold, channel).
      type: dict
    tags:
      description: Tags.
      type: dict
error:
  description: The AWS error code and message when the module fails on an AWS call.
  returned: failure
  type: dict
"""

try:
    from cryptography import x509
except ImportError:  # reported by AWSModule: _cryptography.require_cryptography
    pass

from ansible_collections.rolesanywhere.fleet.plugins.module_utils._aws import (
    TAGS_ARGSPEC,
    AWSError,
    AWSModule,
    Resource,
    certificate_summaries,
    desired_tags,
    find_by_name,
    load_certificates,
    rolesanywhere_tags,
    run_resource_module,
    set_enabled,
    sync_rolesanywhere_tags,
)

MAX_BUNDLE_CHARS = 8000


# What AWS sets for events a request does not mention.
DEFAULT_NOTIFICATIONS = {
    event: {"enabled": True, "threshold": 45, "channel": "ALL"}
    for event in ("CA_CERTIFICATE_EXPIRY", "END_ENTITY_CERTIFICATE_EXPIRY")
}


def notification_view(settings):
    return {
        s["event"]: {"enabled": s["enabled"], "threshold": s.get("threshold"), "channel": s.get("channel", "ALL")}
        for s in settings or []
    }


class TrustAnchor(Resource):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.ra = module.client()

    def validate(self):
        bundle = self.params["certificate_bundle"]
        if bundle is None:
            return
        bundle = bundle.strip() + "\n"
        if len(bundle) > MAX_BUNDLE_CHARS:
            raise AWSError(
                f"certificate_bundle is {len(bundle)} characters; Roles Anywhere accepts at most {MAX_BUNDLE_CHARS}: "
                "give only the CA certificates the fleet's certificates chain to",
                "ValidationException",
            )
        self.certs = load_certificates(bundle, "certificate_bundle")
        for cert in self.certs:
            try:
                is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
            except x509.ExtensionNotFound:
                is_ca = False
            if not is_ca:
                raise AWSError(
                    f"certificate_bundle holds {cert.subject.rfc4514_string()}, which is not a CA certificate "
                    "(basicConstraints CA:TRUE); give the CA's certificate, not a host's",
                    "ValidationException",
                )
        self.bundle = bundle

    def view(self, anchor):
        source = anchor.get("source", {})
        data = source.get("sourceData", {})
        certs = []
        if data.get("x509CertificateData"):
            certs = certificate_summaries(load_certificates(data["x509CertificateData"], "the trust anchor's bundle"))
        return {
            "trust_anchor_arn": anchor["trustAnchorArn"],
            "trust_anchor_id": anchor["trustAnchorId"],
            "name": anchor["name"],
            "source_type": source.get("sourceType"),
            "certificates": certs,
            "acm_pca_arn": data.get("acmPcaArn"),
            "enabled": anchor.get("enabled", False),
            "notification_settings": notification_view(anchor.get("notificationSettings")),
            "tags": rolesanywhere_tags(self.ra, anchor["trustAnchorArn"]),
        }

    def describe(self):
        anchor = find_by_name(self.ra, "list_trust_anchors", "trustAnchors", self.params["name"], "trust anchor")
        return self.view(anchor) if anchor else None

    def desired(self, current):
        current = current or {}
        if self.params["certificate_bundle"] is not None:
            source = {"source_type": "CERTIFICATE_BUNDLE", "certificates": certificate_summaries(self.certs),
                      "acm_pca_arn": None}
        else:
            source = {"source_type": "AWS_ACM_PCA", "certificates": [], "acm_pca_arn": self.params["acm_pca_arn"]}
        notifications = dict(current.get("notification_settings") or DEFAULT_NOTIFICATIONS)
        notifications.update(notification_view(self.params["notification_settings"]))
        return dict(
            source,
            trust_anchor_arn=current.get("trust_anchor_arn"),
            trust_anchor_id=current.get("trust_anchor_id"),
            name=self.params["name"],
            enabled=self.params["enabled"],
            notification_settings=notifications,
            tags=desired_tags(current.get("tags"), self.params["tags"], self.params["purge_tags"]),
        )

    def source(self):
        if self.params["certificate_bundle"] is not None:
            return {"sourceType": "CERTIFICATE_BUNDLE", "sourceData": {"x509CertificateData": self.bundle}}
        return {"sourceType": "AWS_ACM_PCA", "sourceData": {"acmPcaArn": self.params["acm_pca_arn"]}}

    def changed_notifications(self, current, desired):
        return [
            dict(setting, event=event)
            for event, setting in sorted(desired["notification_settings"].items())
            if current.get("notification_settings", {}).get(event) != setting
        ]

    def create(self, desired):
        params = dict(name=desired["name"], source=self.source(), enabled=desired["enabled"],
                      tags=[{"key": k, "value": v} for k, v in sorted(desired["tags"].items())])
        if desired["notification_settings"]:
            params["notificationSettings"] = self.changed_notifications({}, desired)
        self.ra.create_trust_anchor(**params)

    def update(self, current, desired):
        anchor_id = current["trust_anchor_id"]
        source_keys = ("source_type", "certificates", "acm_pca_arn")
        if any(current[k] != desired[k] for k in source_keys):
            self.ra.update_trust_anchor(trustAnchorId=anchor_id, source=self.source())
        if current["enabled"] != desired["enabled"]:
            set_enabled(self.ra, "trust_anchor", "trustAnchorId", anchor_id, desired["enabled"])
        changed = self.changed_notifications(current, desired)
        if changed:
            self.ra.put_notification_settings(trustAnchorId=anchor_id, notificationSettings=changed)
        sync_rolesanywhere_tags(self.ra, current["trust_anchor_arn"], current["tags"], desired["tags"])

    def delete(self, current):
        self.ra.delete_trust_anchor(trustAnchorId=current["trust_anchor_id"])


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        certificate_bundle=dict(type="str"),
        acm_pca_arn=dict(type="str"),
        enabled=dict(type="bool", default=True),
        notification_settings=dict(
            type="list",
            elements="dict",
            options=dict(
                event=dict(
                    type="str", required=True, choices=["CA_CERTIFICATE_EXPIRY", "END_ENTITY_CERTIFICATE_EXPIRY"]
                ),
                enabled=dict(type="bool", default=True),
                threshold=dict(type="int", default=45),
                channel=dict(type="str", choices=["ALL"], default="ALL"),
            ),
        ),
        **TAGS_ARGSPEC,
    )
    module = AWSModule(
        "rolesanywhere",
        argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("certificate_bundle", "acm_pca_arn")],
        required_if=[("state", "present", ("certificate_bundle", "acm_pca_arn"), True)],
    )
    for setting in module.params["notification_settings"] or []:
        if not 1 <= setting["threshold"] <= 360:
            module.fail_json(msg=f"notification_settings threshold {setting['threshold']} must be 1..360 days")
    run_resource_module(module, TrustAnchor(module), "trust_anchor")


if __name__ == "__main__":
    main()
