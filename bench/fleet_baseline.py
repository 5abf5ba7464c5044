#!/usr/bin/env python3
"""Baseline for fleet benchmarks: a trivial 5-task play (no facts) on a local fleet of N hosts.

Prints the wall time and CPU-seconds (controller, whole machine, per host). bench/fleet.py compares cold and
warm enrolment against ``baseline_play`` measured in the same run::

    from bench.fleet_baseline import local_fleet, baseline_play
    with local_fleet(30) as inventory:
        base = baseline_play(inventory)

Run as root: ``.venv/bin/python bench/fleet_baseline.py [--hosts 30] [--forks 10]``.
"""
import argparse
import contextlib
import dataclasses
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fleet import netns_fleet  # noqa: E402
from tests.support.ansible import ansible_env  # noqa: E402

BASELINE_PLAY = """\
- hosts: fleet
  gather_facts: false
  tasks:
    - ansible.builtin.file: {path: /var/tmp/bench, state: directory, mode: "0755"}
    - ansible.builtin.copy: {content: "baseline\\n", dest: /var/tmp/bench/copied, mode: "0644"}
    - ansible.builtin.lineinfile: {path: /var/tmp/bench/lines, line: "baseline", create: true, mode: "0644"}
    - ansible.builtin.command: cat /etc/hostname
      changed_when: false
    - ansible.builtin.stat: {path: /var/tmp/bench/copied}
"""


@dataclasses.dataclass
class PlayFigures:
    hosts: int
    wall_seconds: float
    controller_cpu_seconds: float  # ansible-playbook and its ssh clients
    machine_cpu_seconds: float  # everything on the machine: controller plus the hosts' sshd/python
    changed: int  # total changed tasks over all hosts
    failed_hosts: int
    failures: list = dataclasses.field(default_factory=list)  # the first "fatal:" lines, to see why

    @property
    def cpu_seconds_per_host(self):
        return self.machine_cpu_seconds / self.hosts

    def summary(self, label):
        return (f"{label}: {self.hosts} hosts, wall {self.wall_seconds:.1f} s, CPU {self.machine_cpu_seconds:.1f} s "
                f"(controller {self.controller_cpu_seconds:.1f} s), {self.cpu_seconds_per_host:.2f} CPU-s/host, "
                f"changed={self.changed}, failed hosts={self.failed_hosts}")


def _machine_busy_seconds():
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_play(playbook, inventory, forks=10, extra_args=(), env=None, close_masters=True):
    """Run ``ansible-playbook`` against the fleet inventory and measure it. Cold SSH masters by default."""
    if close_masters:  # inventories from netns_fleet.write_inventory (JSON)
        for group in json.loads(Path(inventory).read_text())["all"]["children"].values():
            for host_vars in group["hosts"].values():
                netns_fleet.close_control_master(host_vars["ansible_host"])
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), str(playbook), *extra_args]
    run_env = ansible_env({"ANSIBLE_FORKS": str(forks), **(env or {})})
    run_env.pop("ANSIBLE_PYTHON_INTERPRETER")  # the inventory names the hosts' python
    cpu_before, busy_before, started = _children_cpu_seconds(), _machine_busy_seconds(), time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env)
    wall = time.monotonic() - started
    recap = re.findall(r"^\S+\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", proc.stdout, re.M)
    if not recap:
        raise RuntimeError(f"no play recap (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return PlayFigures(
        hosts=len(recap),
        wall_seconds=wall,
        controller_cpu_seconds=_children_cpu_seconds() - cpu_before,
        machine_cpu_seconds=_machine_busy_seconds() - busy_before,
        changed=sum(int(c) for c, _, _ in recap),
        failed_hosts=sum(1 for _, u, f in recap if int(u) or int(f)),
        failures=[line[:600] for line in proc.stdout.splitlines() if line.startswith(("fatal:", "failed:"))][:3],
    )


def baseline_play(inventory, forks=10):
    """Wall time and CPU of the trivial 5-task play on every host of ``inventory`` (group ``fleet``)."""
    with tempfile.TemporaryDirectory() as tmp:
        playbook = Path(tmp) / "baseline.yml"
        playbook.write_text(BASELINE_PLAY)
        return run_play(playbook, inventory, forks)


@contextlib.contextmanager
def local_fleet(hosts, releases=()):
    """Start ``hosts`` fresh fleet hosts (Debian releases taken in turn from ``releases``, default bookworm); yield
    the path of an inventory for them; remove them afterwards."""
    if releases:
        started = netns_fleet.up_mixed([releases[i % len(releases)] for i in range(hosts)], fresh=True, timeout=120,
                                       owner_pid=os.getpid())
    else:
        started = netns_fleet.up(count=hosts, fresh=True, timeout=120, owner_pid=os.getpid())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            yield netns_fleet.write_inventory(started, Path(tmp) / "inventory.yml")
    finally:
        netns_fleet.remove([h.name for h in started])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--forks", type=int, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("fleet_baseline: needs root (the local fleet uses network namespaces)")
    started = time.monotonic()
    with local_fleet(args.hosts) as inventory:
        print(f"fleet of {args.hosts} hosts ssh-ready in {time.monotonic() - started:.1f} s; forks={args.forks}; "
              f"load average {' '.join(f'{load:.1f}' for load in os.getloadavg())} (other work skews the figures)")
        figures = baseline_play(inventory, args.forks)
    print(figures.summary("baseline (5 tasks, no facts, cold SSH masters)"))
    print(f"per host-task: {figures.machine_cpu_seconds / (5 * figures.hosts):.2f} CPU-s; "
          f"throughput {5 * figures.hosts / figures.wall_seconds:.1f} host-tasks/s")
    return 0 if figures.failed_hosts == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
