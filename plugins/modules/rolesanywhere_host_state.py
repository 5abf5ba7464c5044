#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: rolesanywhere_host_state
short_description: Record and read a host's IAM Roles Anywhere state for monitoring
version_added: 0.1.0
description:
  - Keeps one JSON file per host (by default an Ansible local facts file, so C(ansible_local.rolesanywhere)
    holds it) with the installed certificate's subject, serial and validity, the helper in use, the last
    verification and the last error.
  - Classifies the host as V(ok), V(due) (inside the renewal window), V(expired) or V(failed)
    (the last attempt recorded an error).
  - Timestamps (C(last_verified_at), C(last_attempt_at), C(checked_at)) are written but never make the
    task changed, so a rerun on a healthy host reports no change.
  - Both states also write the host's Prometheus metrics as a node_exporter textfile (see O(metrics_dir) and
    C(docs/monitoring.md)). With V(present), O(updates) holding C(last_error) record an enrolment attempt,
    successful when C(last_error) is null, else failed (the failure counter goes up).
options:
  path:
    description: The state file.
    type: path
    default: /etc/ansible/facts.d/rolesanywhere.fact
  certificate_path:
    description:
      - The host's Roles Anywhere certificate (PEM). Its subject, serial and validity are recorded.
      - When omitted, the certificate fields already in the state file are kept.
    type: path
  renew_before:
    description:
      - When the certificate counts as due, as a duration before notAfter (V(30d), V(12h), seconds) or a
        share of its lifetime (V(33%)).
    type: str
    default: 33%
  updates:
    description:
      - Fields to set, for example C(helper_impl), C(helper_version), C(last_verified_at), C(assumed_role_arn),
        C(last_error) (V(null) clears it). Never put a secret here, the file is world-readable.
    type: dict
    default: {}
  fingerprint:
    description:
      - A digest of the inputs the host was enrolled with. V(present) records it; both states return
        RV(converged), true when the recorded fingerprint equals this one, the certificate is good and no file
        recorded with O(managed_files) changed, so a role can skip work that would change nothing.
    type: str
  verify_interval:
    description:
      - Seconds after which the last proof of the credentials (C(last_verified_at)) counts as stale;
        RV(verification_due) tells whether to prove them again.
    type: int
    default: 21600
  managed_files:
    description: Files whose SHA-256 are recorded with V(present) and checked for RV(converged).
    type: list
    elements: path
    default: []
  metrics_dir:
    description:
      - The node_exporter textfile directory that receives C(rolesanywhere.prom) (replaced atomically, mode 0644).
      - When omitted, C(/var/lib/prometheus/node-exporter) is used if it exists (Debian's
        C(prometheus-node-exporter) creates it); another directory is created when missing; V('') writes no metrics.
      - Set it for all tasks of a play with C(module_defaults).
    type: path
  state:
    description: V(present) writes the state file; V(query) only reads and classifies it (and refreshes the metrics).
    type: str
    choices: [present, query]
    default: present
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
extends_documentation_fragment:
  - rolesanywhere.fleet.attributes
"""

EXAMPLES = r"""
- name: Record the verified certificate
  rolesanywhere.fleet.rolesanywhere_host_state:
    certificate_path: /etc/rolesanywhere/host.pem
    updates:
      helper_impl: python
      assumed_role_arn: "{{ session.assumed_role_arn }}"
      last_verified_at: "{{ session.verified_at }}"
      last_error: null

- name: Read the state for a report
  rolesanywhere.fleet.rolesanywhere_host_state:
    state: query
  register: ra_state
"""

RETURN = r"""
converged:
  description: Whether the host is enrolled as O(fingerprint) describes and nothing it manages drifted.
  returned: always
  type: bool
verification_due:
  description: Whether the credentials were never proven or not within O(verify_interval).
  returned: always
  type: bool
metrics_path:
  description: The textfile written, or null when no metrics were written (check mode, or no directory).
  returned: always
  type: str
  sample: /var/lib/prometheus/node-exporter/rolesanywhere.prom
host_state:
  description: The state as stored, plus the computed C(status) and C(days_left).
  returned: always
  type: dict
  sample:
    subject: CN=web01,OU=Innovation,O=Example
    serial: 5f3c0a
    not_after: "2027-01-01T00:00:00Z"
    status: ok
    days_left: 34.5
    helper_impl: python
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _metrics
from ansible_collections.rolesanywhere.fleet.plugins.module_utils._host_state import (
    RenewBefore,
    certificate_summary,
    classify,
    file_digests,
    is_converged,
    verification_due,
    merge_state,
    now_utc,
    read_state,
    timestamp,
    write_state,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/ansible/facts.d/rolesanywhere.fact"),
            certificate_path=dict(type="path"),
            renew_before=dict(type="str", default="33%"),
            updates=dict(type="dict", default={}),
            fingerprint=dict(type="str"),
            managed_files=dict(type="list", elements="path", default=[]),
            verify_interval=dict(type="int", default=21600),
            metrics_dir=dict(type="path"),
            state=dict(type="str", choices=["present", "query"], default="present"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        renew_before = RenewBefore(params["renew_before"])
        old = read_state(params["path"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    updates = dict(params["updates"])
    if params["certificate_path"]:
        try:
            with open(params["certificate_path"], "rb") as fh:
                updates.update(certificate_summary(fh.read(), old))
        except (OSError, ValueError) as exc:
            module.fail_json(msg=f"cannot read certificate {params['certificate_path']}: {exc}")

    if params["fingerprint"]:
        updates["fingerprint"] = params["fingerprint"]
    if params["managed_files"]:
        updates["managed_files"] = file_digests(params["managed_files"])

    now = now_utc()
    if params["state"] == "query":
        new, changed = old, False
    else:
        updates["checked_at"] = timestamp(now)
        if "last_error" in updates:
            updates["attempts"] = _metrics.record_attempt(old, "enrol", updates["last_error"] is None,
                                                          updates.get("last_attempt_at") or timestamp(now))
        new, changed = merge_state(old, updates)
        if not module.check_mode:
            write_state(params["path"], new)

    status, days_left = classify(new if "not_after" in new else None, renew_before, now, new.get("last_error"))
    metrics_path = None
    if not module.check_mode:
        try:
            metrics_path = _metrics.publish(new, status, now, params["metrics_dir"])
        except OSError as exc:
            module.warn(f"metrics not written: {exc}")
    result = dict(changed=changed, host_state=dict(new, status=status, days_left=days_left), metrics_path=metrics_path,
                  converged=is_converged(new, params["fingerprint"], status),
                  verification_due=verification_due(new, params["verify_interval"], now))
    if module._diff:
        result["diff"] = dict(before=old, after=new)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
