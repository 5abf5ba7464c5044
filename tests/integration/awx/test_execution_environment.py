"""enrol.yml, rotate.yml and report.yml as automation controller runs them: ansible-runner with process isolation in
the collection's execution environment (``make ee``), against fleet hosts, issuing on a CA host of the fleet. Then the
own CA on localhost inside the container: refused at the first task while its directory is the container's own,
working (and remembered by the next job) once a persistent CA directory is mounted."""
import json
import shutil

import pytest

from tests.fleet import netns_fleet
from tests.support import ca_host, ee
from tests.support.ansible import REPO
from tests.support.podman import missing_reason

pytestmark = [pytest.mark.fleet, pytest.mark.slow]
if missing_reason():
    pytestmark.append(pytest.mark.skip(reason=missing_reason()))

PLAYBOOKS = REPO / "playbooks"
STATE = "/etc/ansible/facts.d/rolesanywhere.fact"
WHEELHOUSE_MOUNT = "/wheelhouse"
CONTAINER_CA = "/srv/rolesanywhere-ca"


@pytest.fixture(scope="module")
def image():
    return ee.ee_image()


@pytest.fixture(autouse=True)
def forwarding_unchanged():
    """Podman must not have switched on IP forwarding (netavark does so for bridge networks; we use none)."""
    before = netns_fleet.read_forwarding()
    yield
    assert netns_fleet.read_forwarding() == before


def job(tmp_path, name, playbook, inventory, image, **kwargs):
    mounts = [f"{(REPO / '.work' / 'wheelhouse').resolve()}:{WHEELHOUSE_MOUNT}:ro", *kwargs.pop("mounts", ())]
    return ee.run_job(tmp_path / name, PLAYBOOKS / playbook, inventory, image, ident=name, mounts=mounts, **kwargs)


def assert_every_host_ok(result, hosts):
    assert result.rc == 0 and result.status == "successful", result.stdout[-6000:]
    stats = result.stats()
    assert set(hosts) <= set(stats["ok"]), stats
    assert not stats["failures"] and not stats["dark"], stats
    for host in hosts:  # each host's results are in the job events, as the controller shows them
        assert any(e["event"] == "runner_on_ok" for e in result.host_events(host)), host


def test_enrol_rotate_report_in_the_execution_environment_with_a_ca_host(ca_site, fleet, tmp_path, image):
    hosts = fleet(3)
    inventory = ee.container_inventory(ca_site.inventory(hosts.hosts, tmp_path / "fleet.json"),
                                       tmp_path / "inventory.json", enrol_wheelhouse=WHEELHOUSE_MOUNT)
    enrol = job(tmp_path, "enrol", "enrol.yml", inventory, image, extravars={"enrol_hosts": "fleet"})
    assert_every_host_ok(enrol, hosts.names)
    records = ca_site.records()
    ca_host.check_ca(records, hosts.names)
    for name in hosts.names:
        state = json.loads(hosts.run(name, f"cat {STATE}").stdout)
        assert state["serial"] == ca_host.serial_hex(records.issued[name]) and state["last_verified_at"]
    identity = hosts.run(hosts.names[0], ["aws", "sts", "get-caller-identity", "--profile", "ra",
                                          "--endpoint-url", ca_site.site.gate.url, "--output", "json"])
    assert ":assumed-role/" in json.loads(identity.stdout)["Arn"]

    rotated = hosts.names[1]
    rotate = job(tmp_path, "rotate", "rotate.yml", inventory, image, limit=[rotated],
                 extravars={"rotate_force": True, "enrol_token_user": "root"})
    assert_every_host_ok(rotate, [rotated])
    state = json.loads(hosts.run(rotated, f"cat {STATE}").stdout)
    assert state["rotation"]["current"]["name"] != "rolesanywhere"
    after = ca_site.records()
    ca_host.check_ca(after, hosts.names)
    assert len(after.database["certificates"]) == len(records.database["certificates"]) + 1

    report = job(tmp_path, "report", "report.yml", inventory, image,
                 extravars={"report_hosts": "fleet", "report_dir": "/runner/project/rolesanywhere-report"})
    assert_every_host_ok(report, hosts.names)
    rows = json.loads((tmp_path / "report" / "project" / "rolesanywhere-report" / "report.json").read_text())
    expected = dict.fromkeys(hosts.names, "ok") | {rotated: "renewed"}  # report.yml marks a fresh rotation
    assert {r["host"]: r["status"] for r in rows if r["host"] in hosts.names} == expected


def test_a_ca_on_localhost_is_refused_in_the_container_and_works_from_a_mounted_directory(
        ca_site, fleet, tmp_path, image):
    hosts = fleet(2)
    local_ca = {"enrol_ca_host": "localhost", "enrol_ca_cert_path": f"{CONTAINER_CA}/ca.pem",
                "enrol_ca_key": {**ca_site.enrol_vars()["enrol_ca_key"], "path": f"{CONTAINER_CA}/ca.key"},
                "enrol_wheelhouse": WHEELHOUSE_MOUNT}
    inventory = ee.container_inventory(ca_site.inventory(hosts.hosts, tmp_path / "fleet.json"),
                                       tmp_path / "inventory.json", **local_ca)

    refused = job(tmp_path, "refused", "enrol.yml", inventory, image, limit=hosts.names[:1])
    assert refused.rc != 0 and refused.status == "failed"
    (failure,) = refused.failed_events()
    assert failure["event_data"]["task"] == "Refuse an own CA on localhost whose records would vanish with the job"
    message = failure["event_data"]["res"]["msg"]
    assert "would be lost when the job ends" in message and f"CA directory {CONTAINER_CA}" in message
    assert "Fix: set enrol_ca_host" in message and "mount a persistent CA directory" in message
    tasks = [e["event_data"]["task"] for e in refused.events if e["event"] == "playbook_on_task_start"]
    assert tasks[-1] == failure["event_data"]["task"] and len(tasks) <= 2  # argument spec check, then this
    assert not refused.stats()["changed"]

    # The CA directory on the machine, mounted into every job: what one job issues, the next job still knows.
    ca_dir = tmp_path / "persistent-ca"
    shutil.copytree(ca_site.site.ca_directory, ca_dir)
    mount = [f"{ca_dir}:{CONTAINER_CA}"]
    first = job(tmp_path, "first", "enrol.yml", inventory, image, limit=hosts.names[:1], mounts=mount)
    assert_every_host_ok(first, hosts.names[:1])
    serials_after_first = [e["serial"] for e in json.loads((ca_dir / "ca.db.json").read_text())["certificates"]]
    second = job(tmp_path, "second", "enrol.yml", inventory, image, limit=hosts.names[1:], mounts=mount)
    assert_every_host_ok(second, hosts.names[1:])
    database = json.loads((ca_dir / "ca.db.json").read_text())["certificates"]
    serials = [e["serial"] for e in database]
    assert serials[:len(serials_after_first)] == serials_after_first and len(serials) == len(set(serials))
    assert sorted(p.stem for p in (ca_dir / "issued").glob("*.pem")) == sorted(hosts.names)
    for name in hosts.names:
        assert any(e["subject"].startswith(f"CN={name},") for e in database)
