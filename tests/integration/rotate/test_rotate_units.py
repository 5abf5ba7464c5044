"""A booted systemd host whose signing helper `serve` unit runs: rotation rewrites the unit for the new
generation, restarts it because it is running, and it serves credentials with the new certificate."""
import json

import pytest

from tests.support.ansible import recap

pytestmark = [pytest.mark.fleet, pytest.mark.slow]

UNIT = "rolesanywhere-ra-serve.service"
PROBE = """
import json, urllib.request
def call(path, method="GET", headers={}):
    req = urllib.request.Request("http://127.0.0.1:9911" + path, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=20) as r:
        return r.read().decode()
token = call("/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
name = call("/latest/meta-data/iam/security-credentials/", headers={"X-aws-ec2-metadata-token": token}).strip()
print(call("/latest/meta-data/iam/security-credentials/" + name, headers={"X-aws-ec2-metadata-token": token}))
"""


def served_access_key(unit_site, name):
    unit_site.fleet.run(name, f"systemctl is-active --wait {UNIT}")
    probe = unit_site.fleet.run(name, ["/usr/bin/python3", "-c", PROBE], check=False)
    assert probe.returncode == 0, probe.stderr[-2000:]
    return json.loads(probe.stdout)["AccessKeyId"]


def test_running_serve_unit_follows_the_new_generation(unit_site):
    (name,) = unit_site.names
    assert served_access_key(unit_site, name)
    pid = unit_site.fleet.run(name, f"systemctl show -p MainPID --value {UNIT}").stdout.strip()

    result = unit_site.rotate()
    assert recap(result.stdout)[name]["failed"] == 0, result.stdout[-6000:]
    state = unit_site.state(name)
    assert state["rotation_state"] == "renewed"
    unit = unit_site.fleet.run(name, ["systemctl", "cat", UNIT]).stdout
    assert state["rotation"]["current"]["certificate"] in unit
    assert unit_site.fleet.run(name, f"systemctl show -p MainPID --value {UNIT}").stdout.strip() not in (pid, "0")
    assert served_access_key(unit_site, name)  # with the old key deleted from the token
    unit_site.assert_all_get_credentials()
