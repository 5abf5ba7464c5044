"""Fleets for the rotation tests: netns SSH hosts enrolled against a local site (tests/site), with
certificates that are due (1-day validity, renewed when less than 2 days are left) or not (30 days)."""
import importlib
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fleet import netns_fleet
from tests.site import LocalSite
from tests.support.ansible import REPO, ansible_env, ensure_collection_link, run_playbook
from tests.support.fleet import fleet  # noqa: F401

ENROL = REPO / "playbooks" / "enrol.yml"
ROTATE = REPO / "playbooks" / "rotate.yml"
REVOKE = REPO / "playbooks" / "revoke.yml"
TOKEN_DIR = "/var/lib/softhsm/tokens"
PKI_DIR = "/etc/rolesanywhere-fleet"
STATE = "/etc/ansible/facts.d/rolesanywhere.fact"
# Rotation: due when less than 2 days are left; new certificates last 30 days. lock_ttl is short so that
# the run after a killed one waits little for the dead run's lock (a run keeps its own expired lock as
# long as no other run took it; the concurrency test uses a longer one).
ROTATE_VARS = {"rotate_renew_before": "2d", "rotate_cert_validity_days": 30, "rotate_lock_ttl": 3,
               "rotate_lock_wait": 60}


def collection_module_utils(*names):
    """module_utils imported under their collection names, as modules on hosts import them."""
    path = str(ensure_collection_link())
    if path not in sys.path:
        sys.path.insert(0, path)
    return [importlib.import_module(f"ansible_collections.rolesanywhere.fleet.plugins.module_utils.{n}") for n in names]


@dataclass
class RotateSite:
    """Some hosts of the shared fleet (``names``); playbooks run on these hosts only."""

    fleet: object
    site: LocalSite
    inventory: Path
    names: list

    def run_vars(self, extra=None):
        return dict(ROTATE_VARS, rotate_hosts=",".join(self.names)) | dict(extra or {})

    def rotate(self, extra=None, check=True, args=()):
        return run_playbook(ROTATE, inventory=str(self.inventory), extra_vars=self.run_vars(extra), check=check,
                            args=list(args))

    def rotate_killed_at(self, task_name, extra=None):
        """Run rotate.yml and SIGKILL it (its whole process group) when the banner of ``task_name`` shows,
        that is after the task before it finished on every host. Returns the output up to the kill."""
        cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(self.inventory), str(ROTATE),
               "-e", json.dumps(self.run_vars(extra))]
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
        with ThreadPoolExecutor(len(self.names)) as pool:  # awscli starts slowly: ask every host at once
            for arn in pool.map(self.identity_arn, self.names):
                assert f":assumed-role/{role}/" in arn

    def state(self, name):
        return json.loads(self.fleet.run(name, ["cat", STATE]).stdout)

    def footprint(self, name):
        """What a rotation changes on a host: token objects, certificate files, the AWS config."""
        listing = self.fleet.run(name, f"find {TOKEN_DIR} -type f | sort; ls -1 {PKI_DIR}; sha256sum /root/.aws/config")
        return listing.stdout


def serve_service(site):
    """A `serve` unit of the signing helper (IMDSv2 on 127.0.0.1:9911), as the rotate role takes it."""
    return {"name": "ra-serve", "mode": "serve", "user": "root", "trust_anchor_arn": site.arns["trust_anchor_arn"],
            "profile_arn": site.arns["profile_arn"], "role_arn": site.arns["role_arn"], "region": site.moto.region,
            "endpoint": site.ra.url, "environment": {"SOFTHSM2_CONF": "/etc/softhsm/softhsm2.conf"},
            "read_write_paths": [TOKEN_DIR]}


@pytest.fixture(scope="package")
def enrolled(fleet, tmp_path_factory):  # noqa: F811
    """6 hosts enrolled once for the package: the first four with 1-day certificates (due), the fifth with 30
    days, and a systemd host (due) running the signing helper's serve unit."""
    hosts = fleet(5)
    booted = fleet(1, systemd=True)
    workdir = tmp_path_factory.mktemp("rotate")
    with LocalSite(workdir / "site") as site:
        # enrol_verify off: rotation proves credentials itself (CreateSession, then awscli on the host).
        inventory = netns_fleet.write_inventory(
            hosts.hosts + booted.hosts, workdir / "inventory.yml",
            extra_vars=site.enrol_vars(enrol_verify=False, enrol_token_user="root"))
        data = json.loads(inventory.read_text())
        for index, host in enumerate(hosts.hosts + booted.hosts):
            days = 30 if index == 4 else 1
            data["all"]["children"]["fleet"]["hosts"][host.name].update(
                enrol_cert_validity_days=days, enrol_cert_renew_before_days=min(10, days - 1))
        service = dict(serve_service(site), certificate=f"{PKI_DIR}/rolesanywhere.pem",
                       private_key="pkcs11:token=rolesanywhere;object=rolesanywhere;type=private"
                                   "?pin-source=file:/etc/rolesanywhere-fleet/token.pin",
                       pkcs11_lib="/usr/lib/softhsm/libsofthsm2.so")
        data["all"]["children"]["fleet"]["hosts"][booted.names[0]].update(
            signing_helper_services=[service], rotate_services=[serve_service(site)])
        inventory.write_text(json.dumps(data, indent=2))
        run_playbook(ENROL, inventory=str(inventory))
        yield hosts, booted, site, inventory


@pytest.fixture(scope="package")
def mixed_site(enrolled):
    """3 hosts: the first two due, the last not."""
    hosts, _, site, inventory = enrolled
    return RotateSite(hosts, site, inventory, [hosts.names[0], hosts.names[1], hosts.names[4]])


@pytest.fixture(scope="package")
def due_site(enrolled):
    """2 hosts, both due."""
    hosts, _, site, inventory = enrolled
    return RotateSite(hosts, site, inventory, hosts.names[2:4])


@pytest.fixture(scope="package")
def unit_site(enrolled):
    """The systemd host with a running serve unit, due."""
    _, booted, site, inventory = enrolled
    return RotateSite(booted, site, inventory, booted.names)
