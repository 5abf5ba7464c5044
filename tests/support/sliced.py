"""Sliced rollouts as automation controller / AWX run a sliced job template: K copies of the same playbook at once,
slice i limited to hosts i, i+K, i+2K, ... of the inventory. Used by tests/integration/awx and bench/sliced.py."""
import os
import signal
import subprocess

from tests.support.ansible import REPO, ansible_env


def slices(names, count):
    """AWX's job slicing: slice i gets hosts i, i+count, i+2*count, ..."""
    return [names[i::count] for i in range(count)]


def start_playbook(playbook, inventory, limit, log_path, extra_args=(), env=None):
    """ansible-playbook limited to ``limit``, in its own process group (a kill takes its forks too), output (unbuffered)
    to ``log_path``."""
    run_env = ansible_env({"PYTHONUNBUFFERED": "1", **(env or {})})
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), str(playbook),
           "--limit", ",".join(limit), *extra_args]
    with open(log_path, "w") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=run_env, start_new_session=True)


def kill_run(proc):
    """SIGKILL the run and its forks: the process group start_playbook made, by its recorded PID."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
