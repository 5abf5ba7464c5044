"""Podman for the execution environment (EE) build and for ansible-runner, without touching the machine's setup.

Everything podman keeps lives under ``.work/podman`` (its containers.conf and storage.conf are given through
``CONTAINERS_CONF`` / ``CONTAINERS_STORAGE_CONF``; /etc is never edited). The settings are the ones this kind of
machine needs: runc (crun 1.8 refuses hybrid cgroups), ``cgroup_manager = "cgroupfs"`` (no systemd as PID 1),
``default_ulimits = []`` (root without CAP_SYS_RESOURCE cannot raise nofile), a file events log. Containers
default to ``netns = "none"``: netavark's bridge network switches on IP forwarding, so every run here says
``--network none`` or ``--network host`` and no network is ever created.
"""
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / ".work" / "podman"
PODMAN = "podman"

CONTAINERS_CONF = """\
[containers]
default_ulimits = []
netns = "none"
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{work}/events.log"
tmp_dir = "{work}/tmp"
volume_path = "{work}/volumes"

[network]
network_config_dir = "{work}/networks"
"""

STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{work}/storage"
runroot = "{work}/run"
"""


def podman_env(base=None):
    """The environment for podman, ansible-builder and ansible-runner: ``base`` (or os.environ) plus the
    project-local configuration, written on first use."""
    WORK.mkdir(parents=True, exist_ok=True)
    files = {"containers.conf": CONTAINERS_CONF, "storage.conf": STORAGE_CONF}
    for name, template in files.items():
        path = WORK / name
        text = template.format(work=WORK)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
    env = dict(os.environ if base is None else base)
    env["CONTAINERS_CONF"] = str(WORK / "containers.conf")
    env["CONTAINERS_STORAGE_CONF"] = str(WORK / "storage.conf")
    return env


def missing_reason():
    """Why podman cannot be used here, or None."""
    if shutil.which(PODMAN) is None:
        return "podman is not installed (tests/bootstrap.sh installs it: apt-get install podman runc)"
    if shutil.which("runc") is None:
        return "runc is not installed (tests/bootstrap.sh installs it)"
    if os.geteuid() != 0:
        return "the execution environment tests run rootful podman: run as root"
    return None


def podman(*args, check=True, capture=True, timeout=600, input=None):
    return subprocess.run([PODMAN, *args], env=podman_env(), check=check, capture_output=capture, text=True,
                          timeout=timeout, input=input)


def image_exists(tag):
    return podman("image", "exists", tag, check=False).returncode == 0
