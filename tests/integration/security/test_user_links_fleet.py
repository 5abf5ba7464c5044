"""Class 1 on a real fleet host: the same scenarios as on localhost (user_links.py), with the user's links planted
over SSH between runs and the modules run by Ansible as root on the host."""
import json
import secrets
import subprocess

import pytest

from tests.integration.security.user_links import Target, run_scenarios
from tests.support.ansible import REPO, ansible_env

pytestmark = [pytest.mark.fleet, pytest.mark.slow]


class FleetHost(Target):
    def __init__(self, fleet, name):
        self.fleet, self.name = fleet, name

    def sh(self, command, user=None):
        remote = f"runuser -u {user} -- sh -c {json.dumps(command)}" if user else command
        return self.fleet.run(self.name, remote).stdout

    def module(self, name, args):
        proc = subprocess.run(
            [str(REPO / ".venv" / "bin" / "ansible"), self.name, "-i", str(self.fleet.inventory), "--one-line",
             "-m", f"rolesanywhere.fleet.{name}", "-a", json.dumps(args)],
            capture_output=True, text=True, timeout=300, env=ansible_env(), check=False)
        line = next((line for line in proc.stdout.splitlines() if line.startswith(self.name + " | ")), "")
        try:
            result = json.loads(line.split(" => ", 1)[1])
        except (ValueError, IndexError):
            raise AssertionError(f"ansible gave no result (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        result["failed"] = line.startswith(f"{self.name} | FAILED")  # the one-line form drops the key
        return result


def test_root_never_follows_links_a_user_planted_on_a_fleet_host(fleet):  # noqa: F811
    hosts = fleet(1)
    problems = run_scenarios(FleetHost(hosts, hosts.names[0]), "rasec" + secrets.token_hex(3))
    assert not problems, "\n".join(f"{name}: {problem}" for name, problem in problems)
