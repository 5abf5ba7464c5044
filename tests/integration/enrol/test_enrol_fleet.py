"""enrol.yml on a local fleet of 5 SSH hosts: keys on each host's SoftHSM2 token, certificates from the
controller's CA, the bundled helper wired into ~/.aws/config, credentials proven against ra_local + moto."""
import json
import os
import re
import stat

import pytest

from tests.support.ansible import REPO, recap, run_playbook

pytestmark = [pytest.mark.fleet, pytest.mark.slow]
ENROL = REPO / "playbooks" / "enrol.yml"


def test_enrol_rerun_and_a_host_stopped_mid_run(enrol_site):
    names = enrol_site.fleet.names
    fleet, site = enrol_site.fleet, enrol_site.site
    stopped = names[-1]
    fleet.stop(stopped)
    first = run_playbook(ENROL, inventory=str(enrol_site.inventory), check=False, args=["-vvv"])
    summary = recap(first.stdout)
    assert summary[stopped]["unreachable"] == 1, first.stdout[-3000:]
    for name in names[:-1]:
        assert summary[name]["failed"] == 0 and summary[name]["unreachable"] == 0, first.stdout[-6000:]
        assert summary[name]["changed"] > 0
    for secret in site.secrets():
        assert secret not in first.stdout and secret not in first.stderr

    fleet.start(stopped)
    second = run_playbook(ENROL, inventory=str(enrol_site.inventory))
    summary = recap(second.stdout)
    assert summary[stopped]["changed"] > 0 and summary[stopped]["failed"] == 0
    assert all(summary[n]["changed"] == 0 for n in names[:-1]), second.stdout[-6000:]

    third = run_playbook(ENROL, inventory=str(enrol_site.inventory))
    assert all(v["changed"] == 0 and v["failed"] == 0 for v in recap(third.stdout).values()), third.stdout[-6000:]
    # Every enrolment step again (not only the converged-host check), in check mode: nothing would change.
    checked = run_playbook(ENROL, inventory=str(enrol_site.inventory), args=["--check", "-e", "enrol_skip_converged=false"])
    assert all(v["changed"] == 0 and v["failed"] == 0 for v in recap(checked.stdout).values()), checked.stdout[-6000:]

    for name in names:
        identity = fleet.run(name, ["aws", "sts", "get-caller-identity", "--profile", "ra",
                                         "--endpoint-url", site.gate.url, "--output", "json"])
        arn = json.loads(identity.stdout)["Arn"]
        assert arn.startswith(f"arn:aws:sts::{site.ra.account}:assumed-role/{site.arns['role_arn'].rsplit('/', 1)[1]}/")
        assert_keys_never_leave_the_token(fleet, name)
        assert_no_readable_file_holds_a_secret(fleet.upper(name), site.secrets())
        # The hosts reach no package index: they got the controller's prebuilt runtime, no virtualenv or pip run.
        runtime = fleet.run(name, "ls -d /opt/rolesanywhere-fleet/runtime/current/pkcs11 /opt/rolesanywhere-fleet/venv",
                            check=False)
        assert "runtime/current/pkcs11" in runtime.stdout and "venv" not in runtime.stdout, runtime.stdout


def test_enrol_after_a_rotation_keeps_the_rotated_generation(enrol_site):
    fleet, site = enrol_site.fleet, enrol_site.site
    host = fleet.names[0]
    run_playbook(ENROL, inventory=str(enrol_site.inventory))
    run_playbook(REPO / "playbooks" / "rotate.yml", inventory=str(enrol_site.inventory),
                 extra_vars={"rotate_force": True, "enrol_token_user": "root"}, args=["--limit", host])
    state = json.loads(fleet.run(host, "cat /etc/ansible/facts.d/rolesanywhere.fact").stdout)
    rotated = state["rotation"]["current"]
    assert rotated["name"] != "rolesanywhere"

    after = run_playbook(ENROL, inventory=str(enrol_site.inventory))
    assert all(v["failed"] == 0 for v in recap(after.stdout).values()), after.stdout[-6000:]
    config = fleet.run(host, "cat /root/.aws/config").stdout
    assert rotated["certificate"] in config and rotated["key_label"] in config
    assert len(private_keys(fleet, host)) == 1, "enrol re-created its own key on a rotated host"
    again = run_playbook(ENROL, inventory=str(enrol_site.inventory))
    assert all(v["changed"] == 0 for v in recap(again.stdout).values()), again.stdout[-6000:]
    identity = fleet.run(host, ["aws", "sts", "get-caller-identity", "--profile", "ra", "--endpoint-url", site.gate.url])
    assert "assumed-role/" in identity.stdout


def private_keys(fleet, name):
    listing = fleet.run(name, "pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label rolesanywhere "
                              "--login --pin \"$(cat /etc/rolesanywhere-fleet/token.pin)\" -O --type privkey").stdout
    return listing.split("Private Key Object")[1:]


def assert_keys_never_leave_the_token(fleet, name):
    """Every private key on the host's token, read independently with OpenSC's pkcs11-tool."""
    keys = private_keys(fleet, name)
    assert keys
    for key in keys:
        access = re.search(r"Access:\s*(.*)", key).group(1)
        assert "sensitive" in access and "never extractable" in access, key
        assert "extractable" not in access.replace("never extractable", ""), key


def assert_no_readable_file_holds_a_secret(upper, secrets):
    """No file the host wrote that others may read contains a PIN or the CA passphrase."""
    for root, _dirs, files in os.walk(upper):
        for filename in files:
            path = os.path.join(root, filename)
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode) or not info.st_mode & stat.S_IROTH:
                continue
            with open(path, "rb") as fh:
                content = fh.read()
            for secret in secrets:
                assert secret.encode() not in content, f"{path} (mode {oct(info.st_mode & 0o777)}) contains a secret"
