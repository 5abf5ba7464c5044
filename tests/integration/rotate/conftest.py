"""Fleets for the rotation tests: netns SSH hosts enrolled against a local site (tests/site), with
certificates that are due (1-day validity, renewed when less than 2 days are left) or not (30 days)."""
import json
import os
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fleet import netns_fleet
from tests.site import LocalSite
from tests.support.ansible import REPO, ansible_env, run_playbook
from tests.support.fleet import fleet  # noqa: F401

ENROL = REPO / "playbooks" / "enrol.yml"
ROTATE = REPO / "playbooks" / "rotate.yml"
REVOKE = REPO / "playbooks" / "revoke.yml"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
TOKEN_DIR = "/var/lib/softhsm/tokens"
PKI_DIR = "/etc/rolesanywhere-fleet"
STATE = "/etc/ansible/facts.d/rolesanywhere.fact"
# Rotation: due when less than 2 days are left; new certificates last 30 days. lock_ttl is short so that
# the run after a killed one waits little for the dead run's lock.
ROTATE_VARS = {"rotate_renew_before": "2d", "rotate_cert_validity_days": 30, "rotate_lock_ttl": 10,
               "rotate_lock_wait": 60}


def recap(stdout):
    return {m.group(1): dict(ok=int(m.group(2)), changed=int(m.group(3)), unreachable=int(m.group(4)),
                             failed=int(m.group(5))) for m in RECAP.finditer(stdout)}


@dataclass
class RotateSite:
    fleet: object
    site: LocalSite
    inventory: Path

    @property
    def names(self):
        return self.fleet.names

    def rotate(self, extra=None, check=True, args=()):
        return run_playbook(ROTATE, inventory=str(self.inventory), extra_vars=dict(ROTATE_VARS, **(extra or {})),
                            check=check, args=list(args))

    def rotate_killed_at(self, task_name, extra=None):
        """Run rotate.yml and SIGKILL it (its whole process group) when the banner of ``task_name`` shows,
        that is after the task before it finished on every host. Returns the output up to the kill."""
        cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(self.inventory), str(ROTATE),
               "-e", json.dumps(dict(ROTATE_VARS, **(extra or {})))]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=ansible_env({"PYTHONUNBUFFERED": "1"}), start_new_session=True)
        lines, killed = [], False
        try:
            for line in proc.stdout:
                lines.append(line)
                if line.startswith(f"TASK [rolesanywhere.fleet.rotate : {task_name}"):
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
                    break
        finally:
            if proc.poll() is None and not killed:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
            proc.stdout.close()
        output = "".join(lines)
        assert killed, f"the run never reached {task_name!r}:\n{output[-6000:]}"
        return output

    def identity_arn(self, name):
        """The assumed-role ARN the host's ~/.aws/config profile gets (awscli through credential_process)."""
        proc = self.fleet.run(name, ["aws", "sts", "get-caller-identity", "--profile", "ra", "--endpoint-url",
                                     self.site.gate.url, "--output", "json"], check=False)
        assert proc.returncode == 0, f"{name} gets no credentials: {proc.stderr[-2000:]}"
        return json.loads(proc.stdout)["Arn"]

    def assert_all_get_credentials(self):
        role = self.site.arns["role_arn"].rsplit("/", 1)[1]
        for name in self.names:
            assert f":assumed-role/{role}/" in self.identity_arn(name)

    def state(self, name):
        return json.loads(self.fleet.run(name, ["cat", STATE]).stdout)

    def footprint(self, name):
        """What a rotation changes on a host: token objects, certificate files, the AWS config."""
        listing = self.fleet.run(name, f"find {TOKEN_DIR} -type f | sort; ls -1 {PKI_DIR}; sha256sum /root/.aws/config")
        return listing.stdout


def enrolled_site(fleet_factory, tmp_path_factory, count, validity_days):
    """``count`` hosts enrolled; ``validity_days`` maps a host index to its first certificate's days."""
    hosts = fleet_factory(count)
    workdir = tmp_path_factory.mktemp("rotate")
    site = LocalSite(workdir / "site").__enter__()
    try:
        # enrol_verify off: rotation proves credentials itself (CreateSession, then awscli on the host).
        inventory = netns_fleet.write_inventory(
            hosts.hosts, workdir / "inventory.yml",
            extra_vars=site.enrol_vars(enrol_verify=False, enrol_token_user="root"))
        data = json.loads(inventory.read_text())
        for index, host in enumerate(hosts.hosts):
            days = validity_days(index)
            data["all"]["children"]["fleet"]["hosts"][host.name].update(
                enrol_cert_validity_days=days, enrol_cert_renew_before_days=min(10, days - 1))
        inventory.write_text(json.dumps(data, indent=2))
        run_playbook(ENROL, inventory=str(inventory))
        return RotateSite(hosts, site, inventory)
    except BaseException:
        site.close()
        raise


@pytest.fixture(scope="module")
def mixed_site(fleet, tmp_path_factory):  # noqa: F811
    """3 hosts: the first two due (1-day certificates), the last not (30 days)."""
    rotate_site = enrolled_site(fleet, tmp_path_factory, 3, lambda i: 1 if i < 2 else 30)
    try:
        yield rotate_site
    finally:
        rotate_site.site.close()


@pytest.fixture(scope="module")
def due_site(fleet, tmp_path_factory):  # noqa: F811
    """2 hosts, both due."""
    rotate_site = enrolled_site(fleet, tmp_path_factory, 2, lambda i: 1)
    try:
        yield rotate_site
    finally:
        rotate_site.site.close()
