#!/usr/bin/env python3
"""enrol.yml on a local fleet against the trivial 5-task baseline play, measured in the same run.

Prints wall time, CPU-seconds and changed counts of the baseline, a cold ``enrol.yml``, a rerun and
``rotate.yml`` right after it with nothing due, and the ratios (goals: cold <= 3.0x baseline in wall time and
machine CPU, rerun <= 0.5x with changed=0 on every host, rotate with nothing due changed=0), with the load average.
``--mix`` measures a fleet of the same size mixed over Debian 11, 12 and 13 too, each against its own baseline.
Run as root: ``.venv/bin/python bench/fleet.py [--hosts 30] [--forks 10] [--mix]``.
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
from tests.fleet.mixed import SOFTHSM_RELEASES  # noqa: E402
from tests.site import LocalSite  # noqa: E402


def with_vars(inventory, extra_vars, path):
    data = json.loads(Path(inventory).read_text())
    data["all"]["vars"].update(extra_vars)
    path.write_text(json.dumps(data, indent=2))
    return path


def measure(hosts, forks, releases=()):
    """Baseline, cold enrol.yml, rerun and rotate.yml with nothing due on a fresh fleet; prints and returns them."""
    enrol = REPO / "playbooks" / "enrol.yml"
    started = time.monotonic()
    with local_fleet(hosts, releases) as inventory, tempfile.TemporaryDirectory() as tmp:
        print(f"fleet of {hosts} hosts ({'/'.join(releases) or 'bookworm'}) ssh-ready in "
              f"{time.monotonic() - started:.1f} s; forks={forks}", flush=True)
        base = baseline_play(inventory, forks)
        print(base.summary("baseline (5 tasks)"), flush=True)
        with LocalSite(Path(tmp) / "site") as site:
            # rotate.yml reads the enrol_* values from the inventory (its profiles name enrol_token_user).
            enrol_inventory = with_vars(inventory, site.enrol_vars(enrol_token_user="root"),
                                        Path(tmp) / "enrol-inventory.json")
            cold = run_play(enrol, enrol_inventory, forks)
            print(cold.summary("enrol.yml cold"), flush=True)
            rerun = run_play(enrol, enrol_inventory, forks)
            print(rerun.summary("enrol.yml rerun"), flush=True)
            rotate = run_play(REPO / "playbooks" / "rotate.yml", enrol_inventory, forks,
                              ["-e", "rotate_renew_before=12h"])
            print(rotate.summary("rotate.yml right after, nothing due"), flush=True)
    for figures in (cold, rerun, rotate):
        for line in figures.failures:
            print(f"  failure: {line}")
    return base, cold, rerun, rotate


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--mix", action="store_true",
                        help="also measure a fleet of the same size mixed over Debian 11, 12 and 13")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/fleet.py needs root (the local fleet uses network namespaces)")
    fleets = {"bookworm": ()} | ({"mixed 11/12/13": tuple(SOFTHSM_RELEASES)} if args.mix else {})
    figures = {label: measure(args.hosts, args.forks, releases) for label, releases in fleets.items()}
    print(f"load average {' '.join(f'{load:.1f}' for load in os.getloadavg())} (other work skews the figures)")
    for label, (base, cold, rerun, rotate) in figures.items():
        print(f"[{label}] cold / baseline  = {cold.wall_seconds / base.wall_seconds:.2f}x wall (goal <= 3.0x), "
              f"{cold.machine_cpu_seconds / base.machine_cpu_seconds:.2f}x CPU")
        print(f"[{label}] rerun / baseline = {rerun.wall_seconds / base.wall_seconds:.2f}x wall (goal <= 0.5x), "
              f"{rerun.machine_cpu_seconds / base.machine_cpu_seconds:.2f}x CPU; changed on rerun: {rerun.changed}")
        print(f"[{label}] rotate (nothing due) / baseline = {rotate.wall_seconds / base.wall_seconds:.2f}x wall; "
              f"changed: {rotate.changed}")
        print(f"[{label}] CPU-s per host: baseline {base.cpu_seconds_per_host:.2f}, "
              f"cold {cold.cpu_seconds_per_host:.2f}, rerun {rerun.cpu_seconds_per_host:.2f}, "
              f"rotate {rotate.cpu_seconds_per_host:.2f}")
    failed = sum(run.failed_hosts for runs in figures.values() for run in runs[1:])
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
