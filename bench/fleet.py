#!/usr/bin/env python3
"""enrol.yml on a local fleet against the trivial 5-task baseline play, measured in the same run.

Prints wall time, CPU-seconds and changed counts of the baseline, a cold ``enrol.yml``, a rerun and
``rotate.yml`` right after it with nothing due, and the ratios (goals: cold <= 3.0x baseline in wall time and
machine CPU, rerun <= 0.5x with changed=0 on every host, rotate with nothing due changed=0), with the load average.
Run as root: ``.venv/bin/python bench/fleet.py [--hosts 30] [--forks 10]``.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.fleet_baseline import baseline_play, local_fleet, run_play  # noqa: E402
from tests.site import LocalSite  # noqa: E402


def with_vars(inventory, extra_vars, path):
    data = json.loads(Path(inventory).read_text())
    data["all"]["vars"].update(extra_vars)
    path.write_text(json.dumps(data, indent=2))
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--forks", type=int, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/fleet.py needs root (the local fleet uses network namespaces)")
    enrol = REPO / "playbooks" / "enrol.yml"
    started = time.monotonic()
    with local_fleet(args.hosts) as inventory, tempfile.TemporaryDirectory() as tmp:
        print(f"fleet of {args.hosts} hosts ssh-ready in {time.monotonic() - started:.1f} s; forks={args.forks}",
              flush=True)
        base = baseline_play(inventory, args.forks)
        print(base.summary("baseline (5 tasks)"), flush=True)
        with LocalSite(Path(tmp) / "site") as site:
            # rotate.yml reads the enrol_* values from the inventory (its profiles name enrol_token_user).
            enrol_inventory = with_vars(inventory, site.enrol_vars(enrol_token_user="root"),
                                        Path(tmp) / "enrol-inventory.json")
            cold = run_play(enrol, enrol_inventory, args.forks)
            print(cold.summary("enrol.yml cold"), flush=True)
            rerun = run_play(enrol, enrol_inventory, args.forks)
            print(rerun.summary("enrol.yml rerun"), flush=True)
            rotate = run_play(REPO / "playbooks" / "rotate.yml", enrol_inventory, args.forks,
                              ["-e", "rotate_renew_before=12h"])
            print(rotate.summary("rotate.yml right after, nothing due"), flush=True)
    for figures in (cold, rerun, rotate):
        for line in figures.failures:
            print(f"  failure: {line}")
    print(f"load average {' '.join(f'{load:.1f}' for load in os.getloadavg())} (other work skews the figures)")
    print(f"cold / baseline  = {cold.wall_seconds / base.wall_seconds:.2f}x wall (goal <= 3.0x), "
          f"{cold.machine_cpu_seconds / base.machine_cpu_seconds:.2f}x CPU")
    print(f"rerun / baseline = {rerun.wall_seconds / base.wall_seconds:.2f}x wall (goal <= 0.5x), "
          f"{rerun.machine_cpu_seconds / base.machine_cpu_seconds:.2f}x CPU; changed on rerun: {rerun.changed}")
    print(f"rotate (nothing due) / baseline = {rotate.wall_seconds / base.wall_seconds:.2f}x wall; "
          f"changed: {rotate.changed}")
    print(f"CPU-s per host: baseline {base.cpu_seconds_per_host:.2f}, cold {cold.cpu_seconds_per_host:.2f}, "
          f"rerun {rerun.cpu_seconds_per_host:.2f}, rotate {rotate.cpu_seconds_per_host:.2f}")
    return 0 if cold.failed_hosts == rerun.failed_hosts == rotate.failed_hosts == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
