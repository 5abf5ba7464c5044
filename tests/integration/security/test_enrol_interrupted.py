"""Class 5: enrol.yml killed (SIGKILL to the controller's process group) at named steps and at random moments (a
seeded random task and a random moment inside it: set RA_KILL_SEED to replay; the seed is printed and named in
every failure), then rerun; and two enrol.yml runs against one host at once.

Right after each kill, before any rerun, every host must be "either as it was or enrolled": the hosts start
with nothing of the collection, so each piece the run manages must be absent or complete on its own
(``killed_host_problems`` states exactly what is checked):
- no half-written file: the PIN file, absent or the whole PIN with mode 0600; the CSR and the certificate,
  absent or parseable (PEM); ~/.aws/config, absent or a parseable INI file; the state file, absent or JSON;
- the token holds at most one key pair and no half of one (as many public as private keys, at most one each);
- a certificate only with a key pair on the token to go with it;
- a profile with a credential_process only if its helper is an existing executable and its certificate
  exists and parses (never a profile pointing at a missing certificate or helper).
Temporary files of killed writes (``.<name>.<random>.tmp``) are allowed here: they sit beside the names, never
at them; the rerun removes them.

After the rerun every host is enrolled with exactly one key pair on its token (no orphaned objects), no
temporary files of killed writes, and verified credentials."""
import os
import random
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fleet import netns_fleet
from tests.site import TOKEN_PIN, LocalSite
from tests.support.ansible import REPO, ansible_env, recap, run_playbook

pytestmark = [pytest.mark.fleet, pytest.mark.slow]
ENROL = REPO / "playbooks" / "enrol.yml"
SEED = int(os.environ.get("RA_KILL_SEED") or random.SystemRandom().randrange(1 << 30))
NAMED_STEPS = ["Install the token access libraries", "Initialise the token", "Key pair on the token",
               "Certificates from the own CA", "Install the certificate and chain", "Wire credential_process"]


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


def run_and_kill(inventory, limit, step=None, tasks=None):
    """Start enrol.yml for one host; SIGKILL its process group when ``step`` starts, or when the ``tasks``-th task
    starts, plus a seeded delay of up to 1 s (so the kill lands inside the task). Returns the output up to the kill
    and the return code."""
    proc = start_enrol(inventory, limit)
    lines, started = [], 0
    for line in proc.stdout:
        lines.append(line)
        if not line.startswith("TASK ["):
            continue
        started += 1
        if (step and step in line) or started == tasks:
            time.sleep(random.Random(SEED + len(lines)).uniform(0, 1.0))
            kill(proc)
    proc.wait()
    return "".join(lines), proc.returncode


def token_objects(fleet, name):
    listing = fleet.run(name, "pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label rolesanywhere "
                              "--login --pin \"$(cat /etc/rolesanywhere-fleet/token.pin)\" -O 2>/dev/null || true").stdout
    return re.findall(r"^(Private Key|Public Key|Certificate|Data|Secret Key) Object", listing, re.M)


# Runs on a killed host (python3, as root): prints one problem a line (see the module docstring).
CONSISTENCY_CHECK = r'''
import configparser, json, os, shlex, stat, subprocess, sys
pin_expected, key_pairs = sys.argv[1], int(sys.argv[2])
pki, pin = "/etc/rolesanywhere-fleet", "/etc/rolesanywhere-fleet/token.pin"
problems = []

def parses(kind, path):
    command = {"x509": ["openssl", "x509", "-noout", "-in", path], "req": ["openssl", "req", "-noout", "-in", path]}
    return subprocess.run(command[kind], capture_output=True).returncode == 0

if os.path.lexists(pin):
    info = os.lstat(pin)
    if open(pin).read().strip() != pin_expected or stat.S_IMODE(info.st_mode) != 0o600:
        problems.append(f"{pin}: not the whole PIN with mode 0600")
if os.path.lexists(pki + "/rolesanywhere.csr") and not parses("req", pki + "/rolesanywhere.csr"):
    problems.append("the CSR is half-written")
certificate = pki + "/rolesanywhere.pem"
if os.path.lexists(certificate):
    if not parses("x509", certificate):
        problems.append("the certificate is half-written")
    if key_pairs != 1:
        problems.append("a certificate without its key pair on the token")
config = "/root/.aws/config"
if os.path.lexists(config):
    parser = configparser.RawConfigParser()
    try:
        parser.read(config)
    except configparser.Error as exc:
        problems.append(f"{config} does not parse: {exc}")
    for section in parser.sections():
        line = parser.get(section, "credential_process", fallback=None)
        if line is None:
            continue
        argv = shlex.split(line)
        if not (os.path.isfile(argv[0]) and os.access(argv[0], os.X_OK)):
            problems.append(f"[{section}] runs {argv[0]}, which is missing")
        named = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--certificate"]
        if not named or not os.path.isfile(named[0]) or not parses("x509", named[0]):
            problems.append(f"[{section}] names a certificate that is missing or does not parse: {named}")
state = "/etc/ansible/facts.d/rolesanywhere.fact"
if os.path.lexists(state):
    try:
        json.load(open(state))
    except ValueError:
        problems.append(f"{state} is half-written")
print("\n".join(problems))
'''


def settle(fleet, name):
    """The controller is dead, but a module it started over SSH runs to its end on the host: wait for it (Ansible's
    remote commands end in "sleep 0"), so the check sees the host as the killed run leaves it."""
    fleet.run(name, "for i in $(seq 600); do pgrep -f '&& [s]leep 0$' >/dev/null || exit 0; sleep 0.2; done; exit 1",
              timeout=180)


def killed_host_problems(fleet, name):
    """What makes a killed host neither as it was nor enrolled (module docstring); empty when consistent."""
    settle(fleet, name)
    objects = token_objects(fleet, name)
    problems = []
    private, public = objects.count("Private Key"), objects.count("Public Key")
    if private != public or private > 1:
        problems.append(f"token: {private} private and {public} public keys")
    pairs = min(private, public)
    output = fleet.run(name, f"python3 - {shlex.quote(TOKEN_PIN)} {pairs}", input=CONSISTENCY_CHECK).stdout
    return problems + output.split("\n") if output.strip() else problems


def leftovers(fleet, name):
    return fleet.run(name, "find /root/.aws /etc/rolesanywhere-fleet /etc/rolesanywhere-fleet-services "
                           "-name '.*.tmp' 2>/dev/null; true").stdout.split()


def test_enrol_killed_at_named_steps_and_random_moments_then_rerun(kill_site):
    print(f"kill seed: {SEED} (set RA_KILL_SEED={SEED} to replay)")
    rng = random.Random(SEED)
    names = kill_site.fleet.names
    plan = [(name, step, None) for name, step in zip(names, NAMED_STEPS)]
    # a random task of the ~37 a first enrolment starts (30 run, 7 skipped), and a random moment inside it
    plan += [(name, None, rng.randint(2, 30)) for name in names[len(NAMED_STEPS):-1]]
    for name, step, tasks in plan:
        output, rc = run_and_kill(kill_site.inventory, name, step=step, tasks=tasks)
        print(f"{name}: killed {'at ' + step if step else f'in task {tasks}'} (rc {rc}, "
              f"{output.count('TASK [')} tasks started)")
        assert rc == -signal.SIGKILL, f"seed {SEED}: the run on {name} was not killed:\n{output[-3000:]}"
        problems = killed_host_problems(kill_site.fleet, name)
        assert not problems, f"seed {SEED}: {name} is neither as it was nor enrolled: {problems}\n{output[-3000:]}"
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
