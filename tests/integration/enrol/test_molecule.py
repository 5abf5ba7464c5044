"""The enrol role's molecule scenarios (extensions/molecule/enrol*), driven from pytest with a local site providing the AWS side."""
import json
import os
import re
import subprocess

import pytest

from tests.site import LocalSite
from tests.support.ansible import REPO, ansible_env

pytestmark = [pytest.mark.fleet, pytest.mark.slow]


def run_molecule(scenario, site_vars):
    env = ansible_env({"PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}", "NO_COLOR": "1",
                       "ANSIBLE_FORCE_COLOR": "0", "PY_COLORS": "0", "RA_SITE_VARS": str(site_vars)})
    env.pop("ANSIBLE_PYTHON_INTERPRETER")  # the scenario sets the hosts' interpreter
    return subprocess.run([str(REPO / ".venv" / "bin" / "molecule"), "test", "-s", scenario], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)


def section(output, step):
    match = re.search(rf"> {step}\] Executing(.*?)> {step}\] Executed: Successful", output, re.S)
    assert match, f"molecule step {step} did not succeed:\n{output[-6000:]}"
    return match.group(1)


@pytest.mark.parametrize("scenario, hosts", [
    ("enrol", ["enrol-a", "enrol-b", "enrol-c"]),
    pytest.param("enrol_tpm", ["enrol-tpm"], marks=pytest.mark.tpm),
])
def test_molecule_scenario(scenario, hosts, fleet, tmp_path):
    # The site binds the fleet bridge: a placeholder host (not in the scenario) keeps the bridge up.
    placeholder = fleet(1)
    try:
        with LocalSite(tmp_path / "site") as site:
            site_vars = tmp_path / "site.json"
            site_vars.write_text(json.dumps(site.enrol_vars()))
            proc = run_molecule(scenario, site_vars)
    finally:
        placeholder.remove()
    output = proc.stdout
    assert proc.returncode == 0, output[-8000:]
    for step, changed in (("idempotence", 0), ("verify", 0)):
        for host in hosts:
            assert re.search(rf"^{host}\s+: ok=\d+\s+changed={changed}\s+unreachable=0\s+failed=0", section(output, step), re.M)
    for host in hosts:
        assert re.search(rf"^{host}\s+: ok=\d+\s+changed=[1-9]\d*\s+unreachable=0\s+failed=0", section(output, "converge"), re.M)
    assert not any(secret in output for secret in site.secrets())
