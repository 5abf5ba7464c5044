"""The role on a booted systemd host of the test fleet: offline runtime install, a hardened `serve` unit that runs,
answers IMDSv2 and is restarted by the role when its certificate changes."""
import json
import re
from pathlib import Path

import pytest

from tests.support.ansible import REPO, run_playbook
from tests.support.fleet import fleet  # noqa: F401

pytestmark = [pytest.mark.fleet, pytest.mark.slow]

PLAYBOOK = Path(__file__).parent / "playbooks" / "fleet_units.yml"
PROBE = """
import json, urllib.request, urllib.error
def call(path, method="GET", headers={}):
    req = urllib.request.Request("http://127.0.0.1:9911" + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
status, token = call("/latest/api/token", "PUT")
print(json.dumps([status, call("/latest/meta-data/iam/security-credentials/app", headers={"X-aws-ec2-metadata-token": token})]))
"""


def main_pid(host, name):
    return host.run(name, "systemctl show -p MainPID --value rolesanywhere-app-serve.service").stdout.strip()


def test_serve_unit_runs_hardened_and_restarts_on_new_certificate(fleet, stand, tmp_path):  # noqa: F811
    host = fleet(1, systemd=True)
    name = host.names[0]
    cert = tmp_path / "host.pem"
    cert.write_bytes(stand.file_cert_path.read_bytes())
    variables = dict(
        test_cert=str(cert), test_key=str(stand.file_key_path),
        signing_helper_impl="python", signing_helper_wheelhouse=str(REPO / ".work" / "wheelhouse"),
        signing_helper_services=[dict(
            name="app-serve", mode="serve", user="daemon", certificate="/etc/ssl/private/ra-host.pem",
            private_key="/etc/ssl/private/ra-host.key", trust_anchor_arn=stand.arns["trust_anchor_arn"],
            profile_arn=stand.arns["profile_arn"], role_arn="arn:aws:iam::123456789012:role/app",
            endpoint="http://127.0.0.1:9")],
    )
    try:
        first = run_playbook(PLAYBOOK, inventory=str(host.inventory), extra_vars=variables)
        assert "failed=0" in first.stdout
        host.run(name, "systemctl is-active --wait rolesanywhere-app-serve.service")
        settings = host.run(name, "systemctl show -p User,NoNewPrivileges,ProtectSystem,ProtectHome,PrivateTmp "
                                  "rolesanywhere-app-serve.service").stdout
        assert sorted(settings.split()) == ["NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=read-only",
                                            "ProtectSystem=strict", "User=daemon"]
        exposure = host.run(name, "systemd-analyze security rolesanywhere-app-serve.service --no-pager | tail -1")
        score = float(re.search(r"exposure level .*?: (\d+\.\d+)", exposure.stdout).group(1))
        print(f"systemd-analyze security exposure of the serve unit: {score}")
        assert score < 5.0, exposure.stdout

        # The helper runs from its offline runtime and serves IMDSv2; with the endpoint down it answers 500,
        # never 200 with empty credentials.
        probe = host.run(name, ["/usr/bin/python3", "-c", PROBE])
        token_status, (creds_status, body) = json.loads(probe.stdout)
        assert token_status == 200 and creds_status == 500 and "AccessKeyId" not in body

        pid = main_pid(host, name)
        again = run_playbook(PLAYBOOK, inventory=str(host.inventory), extra_vars=variables)
        assert re.search(rf"{name}\s+: ok=\d+\s+changed=0\s", again.stdout), again.stdout[-2000:]
        assert main_pid(host, name) == pid

        stand.issue(cert, public_key=stand.file_key_public(), cn="file.fleet.test")
        rotated = run_playbook(PLAYBOOK, inventory=str(host.inventory), extra_vars=variables)
        assert "changed=" in rotated.stdout
        host.run(name, "systemctl is-active --wait rolesanywhere-app-serve.service")
        assert main_pid(host, name) not in (pid, "0")
    finally:
        host.remove()
