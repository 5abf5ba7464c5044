"""molecule's default driver on the local fleet: the shared create/destroy playbooks in tests/fleet/molecule,
proved by the scenario extensions/molecule/fleet_smoke."""
import os
import re
import subprocess

import pytest

from tests.fleet import netns_fleet
from tests.support.ansible import REPO, ansible_env

pytestmark = [pytest.mark.fleet, pytest.mark.slow]


def test_molecule_scenario_create_converge_idempotence_verify_destroy():
    if os.geteuid() != 0:
        pytest.skip("the test fleet needs root: network namespaces, a bridge, nftables and mounts")
    env = ansible_env({"PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}", "NO_COLOR": "1",
                       "ANSIBLE_FORCE_COLOR": "0", "PY_COLORS": "0"})
    env.pop("ANSIBLE_PYTHON_INTERPRETER")  # the scenario sets the hosts' interpreter itself
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "molecule"), "test", "-s", "fleet_smoke"], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    output = proc.stdout  # one stream: molecule logs steps on stderr, Ansible writes recaps on stdout
    assert proc.returncode == 0, output[-6000:]

    def section(step):
        return re.search(rf"> {step}\] Executing(.*?)> {step}\] Executed: Successful", output, re.S).group(1)

    for step, changed in (("converge", 1), ("idempotence", 0), ("verify", 0)):
        for host in ("smoke-a", "smoke-b"):
            assert re.search(rf"^{host}\s+: ok=3\s+changed={changed}\s+unreachable=0\s+failed=0", section(step), re.M), output

    state = netns_fleet.status()
    assert state is None or not {"smoke-a", "smoke-b"} & {h["name"] for h in state["hosts"]}
    assert not (netns_fleet.RUN / "hosts" / "smoke-a").exists()
