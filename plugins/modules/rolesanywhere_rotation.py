#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: rolesanywhere_rotation
short_description: The host side of a certificate rotation - run lock, due decision and journal
version_added: 0.1.0
description:
  - Used by the role C(rolesanywhere.fleet.rotate) (see its tasks) to rotate a host's IAM Roles Anywhere key and
    certificate so that a run stopped at any point leaves the host able to get credentials.
  - A rotation builds a new generation (key label, certificate and chain files named C(<key_label>-<UTC time>))
    next to the current one, proves it, switches the users' C(~/.aws/config) to it and then retires the old one.
  - Each step is recorded in the host state file (key C(rotation)), together with the monitoring fields
    C(rotation_state) (V(ok), V(due), V(renewed), V(failed)), C(stuck_since), C(last_attempt_at), C(last_error) and
    the certificate's C(serial) and C(not_after), which M(rolesanywhere.fleet.rolesanywhere_host_state) and
    C(playbooks/report.yml) show.
  - Each action that writes the state file also writes the host's Prometheus metrics (O(metrics_dir)); V(finish)
    and V(fail) record the rotation attempt's result and count failures.
  - Runs on one host take turns through a lock (O(lock_path)); a run that dies leaves a lock that expires after
    O(lock_ttl) seconds.
options:
  action:
    description:
      - V(begin) takes the lock and decides (due or not, leftovers of a stopped run to discard, a switch to
        finish, an old generation to retire); with nothing to do it records V(ok) and frees the lock. It deletes
        the leftovers' files and whatever is at the new generation's file names.
      - V(install) writes the new generation's certificate (O(certificate_pem)) and chain (O(chain_pem)) for
        O(owner), mode 0644, proves them with O(session) when given (C(CreateSession) with the new key on
        O(token), as O(token.user)) and records that the switch may begin; V(switched) writes O(write_profiles), then
        runs O(profiles) as V(verify) does and makes the proven generation current (the switch is recorded only
        when each of them gets credentials); with O(finish=true) it goes on as V(finish) in the same run.
      - V(verify) writes O(write_profiles), then runs each of O(profiles)' C(credential_process) as its user, as an
        AWS SDK would.
      - V(finish) deletes the retired and discarded generations (keys on O(token), files), records the renewed (or
        ok) state and frees the lock; V(fail) records O(error) and returns what to undo; V(rolled_back) notes that
        the configs use the current generation again; V(release) deletes the discarded generations (unless
        O(keep_discard); keys it cannot delete stay queued, with a warning) and frees the lock.
      - The generations' files are written and deleted through a descriptor of their directory, as root, never
        through a link. Their keys are deleted on O(token) by a child process that has taken the signing user's
        identity; without O(token) the caller deletes them.
    type: str
    required: true
    choices: [begin, install, switched, verify, finish, fail, rolled_back, release]
  run_id:
    description: Identifies this run (the same for all its tasks), the owner of the lock.
    type: str
    required: true
  path:
    description: The host state file (JSON local facts).
    type: path
    default: /etc/ansible/facts.d/rolesanywhere.fact
  lock_path:
    description: The lock file. Defaults to O(path) with C(.lock) appended.
    type: path
  lock_ttl:
    description: Seconds the lock stays valid after each task of the run; must exceed the longest step.
    type: int
    default: 900
  lock_wait:
    description: Seconds V(begin) waits for another run's lock before failing.
    type: int
    default: 900
  host:
    description: The host's name, which seeds its jitter.
    type: str
  key_label:
    description: The key label enrol used; generation names start with it.
    type: str
    default: rolesanywhere
  pki_dir:
    description: The directory of the certificate files.
    type: path
    default: /etc/rolesanywhere-fleet
  chain:
    description: Whether each generation has a chain file (AWS Private CA).
    type: bool
    default: false
  renew_before:
    description: Renew when less than this is left, a duration (V(30d), V(12h)) or a share of the lifetime (V(33%)).
    type: str
    default: 33%
  jitter:
    description:
      - Per host, the renewal window shrinks by up to this share (0 to 1) of itself, derived from the host name
        and certificate serial, so a fleet's renewals spread over several runs.
    type: float
    default: 0.2
  force:
    description: Renew now, due or not.
    type: bool
    default: false
  rekey:
    description: A new key for each generation; V(false) keeps the key and renews only the certificate.
    type: bool
    default: true
  certificate_pem:
    description: For O(action=install), the new generation's certificate (PEM).
    type: str
  chain_pem:
    description: For O(action=install), the certificate chain (PEM) when each generation has one (O(chain)).
    type: str
  owner:
    description: For O(action=install), the user the certificate files belong to (the signing user).
    type: str
    default: root
  error:
    description: What failed, for O(action=fail). Never put a secret here; the state file is world-readable.
    type: str
  new_key_made:
    description:
      - For O(action=fail), V(false) when the step that makes the new key failed before making it (its token
        refused the PIN); the discarded generation then has no key to delete, and no later run logs in for it.
    type: bool
    default: true
  finish:
    description: For O(action=switched), go on as O(action=finish) in the same run once the switch is recorded.
    type: bool
    default: false
  token:
    description:
      - For O(action=finish), O(action=switched) with O(finish=true) and O(action=release), the token whose
        retired and discarded keys are deleted, as O(token.user); for O(action=install) with O(session), the
        token of the new key.
    type: dict
    suboptions:
      user:
        description: The token's owner (the signing user); the token is used with that user's identity only.
        type: str
        required: true
      module_path:
        description: The token's PKCS#11 library.
        type: path
        required: true
      token_label:
        description: The token's label.
        type: str
        required: true
      token_env:
        description: Environment for the library (C(SOFTHSM2_CONF), C(TPM2_PKCS11_STORE), ...).
        type: dict
        default: {}
      pin_file:
        description: The file holding the user PIN, readable by O(token.user).
        type: path
        required: true
  session:
    description: For O(action=install), prove the new generation with this C(CreateSession) before the switch.
    type: dict
    suboptions:
      trust_anchor_arn:
        description: The trust anchor's ARN.
        type: str
        required: true
      profile_arn:
        description: The Roles Anywhere profile's ARN.
        type: str
        required: true
      role_arn:
        description: The IAM role's ARN.
        type: str
        required: true
      region:
        description: The region, by default the trust anchor's.
        type: str
      endpoint:
        description: The Roles Anywhere endpoint URL, by default AWS's for the region.
        type: str
      ca_bundle:
        description: CA certificates (PEM) that verify the endpoint's TLS certificate.
        type: path
      session_duration:
        description: The session's lifetime in seconds.
        type: int
        default: 3600
  keep_discard:
    description:
      - For O(action=release), keep the generations to discard in the journal (their keys could not be deleted,
        for example after a refused PIN); the next run deletes them.
    type: bool
    default: false
  profiles:
    description: For O(action=verify) and O(action=switched), the profiles to run (C(user), C(profile), optional C(config_path)).
    type: list
    elements: dict
    default: []
  write_profiles:
    description:
      - For O(action=switched) and O(action=verify), profiles to write first, each entry with the options of
        M(rolesanywhere.fleet.aws_credential_process) except C(pin) and C(private_key) (give O(pin) once here).
      - Saves a module run per host when nothing has to happen between writing the profiles and checking them.
    type: list
    elements: dict
    default: []
  pin:
    description: For O(write_profiles), the token PIN, used by each entry (only AWS's helper needs it).
    type: str
  metrics_dir:
    description:
      - The node_exporter textfile directory that receives C(rolesanywhere.prom), as in
        M(rolesanywhere.fleet.rolesanywhere_host_state); by default C(/var/lib/prometheus/node-exporter) if it
        exists; V('') writes no metrics.
    type: path
attributes:
  check_mode:
    support: full
    description: Can run in check mode and return the predicted change without modifying the target.
    details: V(begin) decides without writing or locking; the other actions change nothing in check mode.
  diff_mode:
    support: none
    description: Returns no diff.
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
seealso:
  - module: rolesanywhere.fleet.rolesanywhere_host_state
"""

EXAMPLES = r"""
- name: Take the lock and decide
  rolesanywhere.fleet.rolesanywhere_rotation:
    action: begin
    run_id: "{{ run_id }}"
    host: "{{ inventory_hostname }}"
    renew_before: 33%
  register: plan

- name: Install the new certificate for the signing user; the switch may begin
  rolesanywhere.fleet.rolesanywhere_rotation:
    action: install
    run_id: "{{ run_id }}"
    certificate_pem: "{{ issued.certificate }}"
    owner: rasigner
"""

RETURN = r"""
plan:
  description: What V(begin) decided.
  returned: action=begin
  type: dict
  contains:
    due:
      description: Whether a new generation is to be made (or a stopped switch finished).
      type: bool
    reason:
      description: Why, with the days left and the renewal window.
      type: str
    done:
      description: Nothing to do on this host; the lock is already free.
      type: bool
    resume:
      description: A stopped run had proven V(new) and started the switch; this run finishes it.
      type: bool
    current:
      description: The generation in use (C(name), C(key_label), C(certificate), C(chain), C(csr)).
      type: dict
    new:
      description: The generation to make or finish, or null.
      type: dict
    discard:
      description: Unproven generations of stopped runs to delete (C(delete_key) says whether the key goes too).
      type: list
      elements: dict
    retire:
      description: The previous generation, to delete now that the switch is proven, or null.
      type: dict
    waited:
      description: Seconds spent waiting for another run's lock.
      type: float
undo:
  description: What the caller must undo after V(fail) (C(rollback_configs), C(discard), C(phase)).
  returned: action=fail
  type: dict
discard:
  description: Generations to delete after V(rolled_back).
  returned: action=rolled_back
  type: list
  elements: dict
written:
  description: Per entry of O(write_profiles) its C(config_path) and whether it C(changed).
  returned: action=switched or action=verify
  type: list
  elements: dict
verified:
  description: For V(verify) and V(switched), per profile the expiry of the credentials it obtained.
  returned: action=verify or action=switched
  type: list
  elements: dict
host_state:
  description: The state file's content after the action.
  returned: always
  type: dict
"""

import os
import pwd

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _aws_config
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _host_state
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _metrics
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _rotation


def write_profiles(module, entries, pin):
    """Write each entry as aws_credential_process would (its options, checked the same way)."""
    written = []
    for entry in entries:
        given = sorted({"pin", "private_key"} & set(entry))
        if given:
            raise _rotation.RotationError(f"write_profiles entries take no {' or '.join(given)}: give pin once, "
                                          "as the option pin")
        validated = ArgumentSpecValidator(
            _aws_config.ARGUMENT_SPEC, mutually_exclusive=_aws_config.MUTUALLY_EXCLUSIVE,
            required_if=_aws_config.REQUIRED_IF, required_together=_aws_config.REQUIRED_TOGETHER,
        ).validate(dict(entry, pin=pin))
        if validated.error_messages:
            raise _rotation.RotationError(f"write_profiles entry for {entry.get('user')}/{entry.get('profile')}: "
                                          + "; ".join(validated.error_messages))
        try:
            result, warnings = _aws_config.ensure(validated.validated_parameters, module.check_mode, False)
        except _aws_config.ProfileError as exc:
            raise _rotation.RotationError(str(exc)) from None
        for warning in warnings:
            module.warn(warning)
        written.append(dict(user=entry["user"], profile=entry["profile"], config_path=result["config_path"],
                            changed=result["changed"]))
    return written


def verify_profiles(profiles):
    verified = []
    for entry in profiles:
        user, profile = entry.get("user"), entry.get("profile")
        if not user or not profile:
            raise _rotation.RotationError(f"each of profiles needs user and profile, got {entry!r}")
        try:
            home = pwd.getpwnam(user).pw_dir
        except KeyError:
            raise _rotation.RotationError(f"profiles: user {user!r} does not exist on this host") from None
        config_path = entry.get("config_path") or os.path.join(home, ".aws", "config")
        expiration = _rotation.run_credential_process(user, config_path, profile)
        verified.append(dict(user=user, profile=profile, expiration=expiration))
    return verified


def publish_metrics(module, state, renew_before, now):
    status = _host_state.classify(state if "not_after" in state else None, renew_before, now, state.get("last_error"))[0]
    try:
        _metrics.publish(state, status, now, module.params["metrics_dir"])
    except OSError as exc:
        module.warn(f"metrics not written: {exc}")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", required=True,
                        choices=["begin", "install", "switched", "verify", "finish", "fail", "rolled_back", "release"]),
            run_id=dict(type="str", required=True),
            path=dict(type="path", default=_host_state.DEFAULT_STATE_PATH),
            lock_path=dict(type="path"),
            lock_ttl=dict(type="int", default=900),
            lock_wait=dict(type="int", default=900),
            host=dict(type="str"),
            key_label=dict(type="str", default="rolesanywhere", no_log=False),
            pki_dir=dict(type="path", default="/etc/rolesanywhere-fleet"),
            chain=dict(type="bool", default=False),
            renew_before=dict(type="str", default="33%"),
            jitter=dict(type="float", default=0.2),
            force=dict(type="bool", default=False),
            rekey=dict(type="bool", default=True),
            certificate_pem=dict(type="str"),
            chain_pem=dict(type="str"),
            owner=dict(type="str", default="root"),
            error=dict(type="str"),
            new_key_made=dict(type="bool", default=True),
            profiles=dict(type="list", elements="dict", default=[]),
            write_profiles=dict(type="list", elements="dict", default=[]),
            pin=dict(type="str", no_log=True),
            keep_discard=dict(type="bool", default=False),
            finish=dict(type="bool", default=False),
            session=dict(type="dict", options=dict(
                trust_anchor_arn=dict(type="str", required=True),
                profile_arn=dict(type="str", required=True),
                role_arn=dict(type="str", required=True),
                region=dict(type="str"),
                endpoint=dict(type="str"),
                ca_bundle=dict(type="path"),
                session_duration=dict(type="int", default=3600),
            )),
            token=dict(type="dict", no_log=False, options=dict(
                user=dict(type="str", required=True),
                module_path=dict(type="path", required=True),
                token_label=dict(type="str", required=True, no_log=False),
                token_env=dict(type="dict", default={}, no_log=False),
                pin_file=dict(type="path", required=True),
            )),
            metrics_dir=dict(type="path"),
        ),
        required_if=[("action", "begin", ("host",)), ("action", "install", ("certificate_pem",)),
                     ("action", "fail", ("error",))],
        supports_check_mode=True,
    )
    params = module.params
    if params["lock_ttl"] < 2:
        module.fail_json(msg=f"lock_ttl {params['lock_ttl']} is too short: give at least 2 seconds")
    if not 0 <= params["jitter"] <= 1:
        module.fail_json(msg=f"jitter {params['jitter']} must be between 0 and 1 (a share of the renewal window)")
    action = params["action"]
    lock = _rotation.RunLock(params["lock_path"] or params["path"] + ".lock")
    result = dict(changed=False)
    try:
        renew_before = _host_state.RenewBefore(params["renew_before"])
        waited = 0.0
        if action == "begin" and not module.check_mode:
            waited = lock.acquire(params["run_id"], params["lock_ttl"], params["lock_wait"])
        # Read only under the lock: the run before may have changed everything while this one waited.
        rotation = _rotation.Rotation(params["path"], lock, params["run_id"], params["lock_ttl"],
                                      dry_run=module.check_mode)
        now = _host_state.now_utc()
        if action == "begin":
            plan = rotation.begin(host=params["host"], base_label=params["key_label"], pki_dir=params["pki_dir"],
                                  chain=params["chain"], renew_before=renew_before, jitter=params["jitter"],
                                  force=params["force"], rekey=params["rekey"], now=now)
            result.update(plan=dict(plan, waited=waited), changed=rotation.changed or not plan["done"])
        elif action == "verify":
            result["written"] = write_profiles(module, params["write_profiles"], params["pin"])
            result["verified"] = verify_profiles(params["profiles"])
            result["changed"] = any(entry["changed"] for entry in result["written"])
        elif not module.check_mode:
            if action == "install":
                rotation.install(params["certificate_pem"], params["chain_pem"], params["owner"], params["token"],
                                 params["session"])
            elif action == "switched":
                result["written"], result["verified"] = rotation.switched(lambda: (
                    write_profiles(module, params["write_profiles"], params["pin"]),
                    verify_profiles(params["profiles"])))
                if params["finish"]:
                    rotation.finish(now, params["token"])
            elif action == "finish":
                rotation.finish(now, params["token"])
            elif action == "fail":
                result["undo"] = rotation.fail(params["error"], now, new_key_made=params["new_key_made"])
            elif action == "rolled_back":
                result["discard"] = rotation.rolled_back()
            else:
                warning = rotation.release(keep_discard=params["keep_discard"], token=params["token"])
                if warning:
                    module.warn(warning)
            result["changed"] = rotation.changed
    except (_rotation.RotationError, ValueError, OSError) as exc:
        module.fail_json(msg=str(exc))
    if rotation.state != rotation.original and not module.check_mode:
        publish_metrics(module, rotation.state, renew_before, now)
    result["host_state"] = rotation.state
    module.exit_json(**result)


if __name__ == "__main__":
    main()
