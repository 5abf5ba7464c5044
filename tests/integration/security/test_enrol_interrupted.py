"""Class 5: enrol.yml killed (SIGKILL to the controller's process group) at named steps and at random moments
(seeded: set RA_KILL_SEED to replay, the seed is printed), then rerun; and two enrol.yml runs against one host at
once. Afterwards every host is enrolled with exactly one key pair on its token (no orphaned objects), no
temporary files of killed writes, and verified credentials."""
import os
import random
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fleet import netns_fleet
from tests.site import LocalSite
from tests.support.ansible import REPO, ansible_env, recap, run_playbook

pytestmark = [pytest.mark.fleet, pytest.mark.slow]
ENROL = REPO / "playbooks" / "enrol.yml"
SEED = int(os.environ.get("RA_KILL_SEED") or random.SystemRandom().randrange(1 << 30))
NAMED_STEPS = ["Install the token access libraries", "Initialise the token", "Key pair on the token",
               "CSR signed on the token", "Certificate from the own CA", "Wire credential_process"]


@dataclass
class Site:
    fleet: object
    site: LocalSite
    inventory: Path


@pytest.fixture(scope="module")
def kill_site(fleet, tmp_path_factory):  # noqa: F811
    hosts = fleet(len(NAMED_STEPS) + 3)
    workdir = tmp_path_factory.mktemp("kill")
    with LocalSite(workdir / "site") as site:
        inventory = netns_fleet.write_inventory(hosts.hosts, workdir / "inventory.yml", extra_vars=site.enrol_vars())
        yield Site(hosts, site, inventory)


def start_enrol(inventory, limit):
    return subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), str(ENROL), "--limit", limit],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env=ansible_env({"PYTHONUNBUFFERED": "1"}))


def kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_and_kill(inventory, limit, step=None, after=None):
    """Start enrol.yml for one host; SIGKILL its process group when ``step`` starts (plus a seeded delay of up to
    0.5 s, so the kill lands inside the step) or ``after`` seconds. Returns the output up to the kill."""
    proc = start_enrol(inventory, limit)
    timer = threading.Timer(after, kill, [proc]) if after is not None else None
    if timer:
        timer.start()
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if step and line.startswith("TASK [") and step in line:
            time.sleep(random.Random(SEED + len(lines)).uniform(0, 0.5))
            kill(proc)
    proc.wait()
    if timer:
        timer.cancel()
    return "".join(lines), proc.returncode


def token_objects(fleet, name):
    listing = fleet.run(name, "pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label rolesanywhere "
                              "--login --pin \"$(cat /etc/rolesanywhere-fleet/token.pin)\" -O 2>/dev/null || true").stdout
    return re.findall(r"^(Private Key|Public Key|Certificate|Data|Secret Key) Object", listing, re.M)


def leftovers(fleet, name):
    return fleet.run(name, "find /root/.aws /etc/rolesanywhere-fleet /etc/rolesanywhere-fleet-services "
                           "-name '.*.tmp' 2>/dev/null; true").stdout.split()


def test_enrol_killed_at_named_steps_and_random_moments_then_rerun(kill_site):
    print(f"kill seed: {SEED} (set RA_KILL_SEED={SEED} to replay)")
    rng = random.Random(SEED)
    names = kill_site.fleet.names
    plan = [(name, step, None) for name, step in zip(names, NAMED_STEPS)]
    plan += [(name, None, round(rng.uniform(2.0, 30.0), 1)) for name in names[len(NAMED_STEPS):-1]]
    for name, step, after in plan:
        output, rc = run_and_kill(kill_site.inventory, name, step=step, after=after)
        print(f"{name}: killed {'at ' + step if step else f'after {after} s'} (rc {rc}, "
              f"{output.count('TASK [')} tasks started)")
        assert rc == -signal.SIGKILL or "PLAY RECAP" in output, output[-3000:]
    killed = [entry[0] for entry in plan]
    rerun = run_playbook(ENROL, inventory=str(kill_site.inventory), args=["--limit", ",".join(killed)], check=False)
    finished = {host: (counts["unreachable"], counts["failed"]) for host, counts in recap(rerun.stdout).items()}
    for name in killed:
        assert finished.get(name) == (0, 0), f"{name} did not finish on the rerun:\n{rerun.stdout[-6000:]}"
        assert sorted(token_objects(kill_site.fleet, name)) == ["Private Key", "Public Key"], name
        assert leftovers(kill_site.fleet, name) == [], name
    again = run_playbook(ENROL, inventory=str(kill_site.inventory), args=["--limit", ",".join(killed)])
    assert all(counts["changed"] == 0 for counts in recap(again.stdout).values()), again.stdout[-4000:]


def test_two_enrolments_at_once_create_one_key(kill_site):
    name = kill_site.fleet.names[-1]
    first, second = start_enrol(kill_site.inventory, name), start_enrol(kill_site.inventory, name)
    outputs = [proc.communicate(timeout=900)[0] for proc in (first, second)]
    for proc, output in zip((first, second), outputs):
        # each run finishes, or fails with a task's message (never a hang, never a traceback)
        assert proc.returncode == 0 or "fatal: [" in output, output[-4000:]
        assert "Traceback" not in output
    assert any(proc.returncode == 0 for proc in (first, second)), outputs[1][-4000:]
    assert sorted(token_objects(kill_site.fleet, name)) == ["Private Key", "Public Key"]
    rerun = run_playbook(ENROL, inventory=str(kill_site.inventory), args=["--limit", name])
    assert "failed=0" in rerun.stdout
    assert sorted(token_objects(kill_site.fleet, name)) == ["Private Key", "Public Key"]
