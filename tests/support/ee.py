"""Jobs run as automation controller runs them: ansible-runner with process isolation in the collection's execution
environment (``make ee``), host networking (the EE reaches the fleet over the controller's test bridge; podman never
creates a network), the SSH key handed over through ansible-runner's ``env/ssh_key`` (ssh-agent in the container).

``Job`` reads what the runner leaves in the private data directory: rc, status, stdout and the job events.
"""
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.fleet import netns_fleet
from tests.support.ansible import REPO
from tests.ee.build import image_tag
from tests.support.podman import podman_env

# Rootful podman here: the job runs as root in the container, so that it can read the private data directory
# ansible-runner creates (mode 0700, owned by the caller), as a rootless automation controller node maps its user.
CONTAINER_OPTIONS = ("--network=host", "--user=0")


def ee_image():
    """The EE's tag, built (offline; ~2 min the first time, ~30 s after a change of the collection) unless it holds
    the collection as it is now."""
    subprocess.run([sys.executable, str(REPO / "tests" / "ee" / "build.py"), "--if-missing"], check=True)
    return image_tag()


@dataclasses.dataclass
class Job:
    rc: int
    status: str
    stdout: str
    events: list

    def stats(self):
        (stats,) = [e["event_data"] for e in self.events if e["event"] == "playbook_on_stats"]
        return stats

    def host_events(self, host):
        return [e for e in self.events if e.get("event_data", {}).get("host") == host]

    def failed_events(self):
        return [e for e in self.events if e["event"] in ("runner_on_failed", "runner_on_unreachable")
                and not e["event_data"].get("ignore_errors")]


def container_inventory(inventory_path, path, **overrides):
    """The fleet inventory for use inside the EE: no controller paths (key file, ControlPath); the key comes from
    ssh-agent, connection sharing uses the container's own ControlPath."""
    inventory = json.loads(Path(inventory_path).read_text())
    host_vars = inventory["all"]["vars"]
    host_vars.pop("ansible_ssh_private_key_file")
    host_vars["ansible_ssh_args"] = "-o ControlMaster=auto -o ControlPersist=60s -o ConnectTimeout=5"
    # IdentitiesOnly would make ssh ignore the agent's key (no identity file names it).
    host_vars["ansible_ssh_common_args"] = host_vars["ansible_ssh_common_args"].replace("-o IdentitiesOnly=yes", "")
    host_vars.update(overrides)
    Path(path).write_text(json.dumps(inventory, indent=2) + "\n")
    return Path(path)


def run_job(private_data_dir, playbook, inventory, image, ident, mounts=(), extravars=None, limit=None):
    """One job: ``playbook`` (copied into the project, as a controller project checkout) against ``inventory``."""
    pdd = Path(private_data_dir)
    for sub in ("project", "inventory", "env"):
        (pdd / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(playbook, pdd / "project" / Path(playbook).name)
    shutil.copy(inventory, pdd / "inventory" / "hosts.json")
    shutil.copy(netns_fleet.ssh_key_path(), pdd / "env" / "ssh_key")
    if extravars:
        (pdd / "env" / "extravars").write_text(json.dumps(extravars))
    cmd = [str(REPO / ".venv" / "bin" / "ansible-runner"), "run", str(pdd), "-p", Path(playbook).name,
           "--ident", ident, "--process-isolation", "--process-isolation-executable", "podman",
           "--container-image", image, *(f"--container-option={o}" for o in CONTAINER_OPTIONS)]
    for mount in mounts:
        cmd += ["--container-volume-mount", mount]
    if limit:
        cmd += ["--limit", ",".join(limit)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=podman_env(), timeout=900, check=False)
    artifacts = pdd / "artifacts" / ident
    event_files = sorted((artifacts / "job_events").glob("*.json"), key=lambda p: int(p.name.split("-", 1)[0]))
    events = [json.loads(p.read_text()) for p in event_files]
    status = (artifacts / "status").read_text().strip() if (artifacts / "status").is_file() else "missing"
    return Job(rc=proc.returncode, status=status, stdout=proc.stdout + proc.stderr, events=events)
