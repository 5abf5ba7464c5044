"""A sliced rollout as AWX runs a sliced job template: 3 copies of enrol.yml at once over 9 hosts (slice i limited to
hosts i, i+3, i+6), all issuing on one CA host over SSH. One slice is killed part-way (SIGKILL, after its first
certificates were issued) and finished by rerunning that slice alone."""
import json
import time

import pytest

from tests.integration.awx.conftest import ENROL
from tests.integration.enrol.test_enrol_fleet import private_keys
from tests.support import ca_host
from tests.support.ansible import run_playbook
from tests.support.ansible import recap
from tests.support.sliced import kill_run, slices, start_playbook

pytestmark = [pytest.mark.fleet, pytest.mark.slow]
SLICES = 3
HOSTS = 9
ISSUE_TASK = "TASK [rolesanywhere.fleet.enrol : Certificates from the own CA"
STATE = "/etc/ansible/facts.d/rolesanywhere.fact"


def wait_for_issuance(log_path, proc, timeout=600):
    """Until the run has issued at least one certificate (a 'changed' result under the issuing task)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text()
        if ISSUE_TASK in text and "changed: [" in text.split(ISSUE_TASK, 1)[1]:
            return
        assert proc.poll() is None, f"the slice ended before issuing:\n{text[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"no certificate issued in {timeout} s:\n{log_path.read_text()[-3000:]}")


def test_three_slices_against_one_ca_host_and_a_killed_slice_rerun_alone(ca_site, fleet, tmp_path):
    hosts = fleet(HOSTS)
    inventory = ca_site.inventory(hosts.hosts, tmp_path / "inventory.json")
    parts = slices(hosts.names, SLICES)
    killed = SLICES - 1
    logs = [tmp_path / f"slice{i}.log" for i in range(SLICES)]
    runs = [start_playbook(ENROL, inventory, part, log) for part, log in zip(parts, logs)]
    wait_for_issuance(logs[killed], runs[killed])
    kill_run(runs[killed])
    for i, run in enumerate(runs):
        if i != killed:
            assert run.wait(timeout=900) == 0, logs[i].read_text()[-6000:]
            summary = recap(logs[i].read_text())
            assert sorted(summary) == sorted(parts[i])  # the slice touched only its own hosts
            assert all(v["failed"] == 0 and v["unreachable"] == 0 for v in summary.values()), summary

    rerun = run_playbook(ENROL, inventory=str(inventory), args=["--limit", ",".join(parts[killed])])
    assert sorted(recap(rerun.stdout)) == sorted(parts[killed])

    records = ca_site.records()
    by_serial = ca_host.check_ca(records, hosts.names)
    for name in hosts.names:
        records_for_host = [e for e in by_serial.values() if e["subject"].startswith(f"CN={name},")]
        if name not in parts[killed]:
            assert len(records_for_host) == 1, f"{name} was issued {len(records_for_host)} certificates"
        else:  # the kill may have struck between the CA's record and the host's copy: never more than one extra
            assert 1 <= len(records_for_host) <= 2
        assert len(private_keys(hosts, name)) == 1, f"{name} has more than one key on its token"
        state = json.loads(hosts.run(name, f"cat {STATE}").stdout)
        assert state["serial"] == ca_host.serial_hex(records.issued[name]), name
        assert state["last_verified_at"], f"{name}: credentials never proven"

    # The CRL the CA host publishes afterwards: parseable, signed by the CA, consistent with the database.
    revoked = ca_host.serial_hex(records.issued[hosts.names[0]])
    crl_args = {"path": f"{ca_host.CA_DIRECTORY}/ca.crl", "ca_cert_path": f"{ca_host.CA_DIRECTORY}/ca.pem",
                "ca_key": ca_site.enrol_vars()["enrol_ca_key"], "revoke": [revoked], "reason": "superseded"}
    crl_play = tmp_path / "crl.yml"
    crl_play.write_text(json.dumps([{"hosts": "ca", "gather_facts": False, "tasks": [
        {"rolesanywhere.fleet.x509_crl": crl_args}]}]))
    run_playbook(crl_play, inventory=str(inventory))
    after = ca_site.records()
    assert after.crl is not None and {format(r.serial_number, "x") for r in after.crl} == {revoked}
    ca_host.check_ca(after, hosts.names)
