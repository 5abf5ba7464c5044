#!/usr/bin/env python3
"""rotate.yml on a local fleet against the trivial 5-task baseline play, measured in the same run.

The fleet is enrolled with 30-day certificates except every tenth host (10%), which gets a 1-day one. Prints
the baseline, rotate.yml with nothing due (renew before 12h), its rerun, and rotate.yml with the 10% due
(renew before 2d), and the ratios (goal: nothing due <= 1.0x baseline wall time).

Run as root: ``.venv/bin/python bench/rotate.py [--hosts 30] [--forks 10]``.
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

from bench.fleet import with_vars  # noqa: E402
from bench.fleet_baseline import baseline_play, local_fleet, run_play  # noqa: E402
from tests.site import LocalSite  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--forks", type=int, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/rotate.py needs root (the local fleet uses network namespaces)")
    enrol, rotate = REPO / "playbooks" / "enrol.yml", REPO / "playbooks" / "rotate.yml"
    started = time.monotonic()
    with local_fleet(args.hosts) as inventory, tempfile.TemporaryDirectory() as tmp:
        print(f"fleet of {args.hosts} hosts ssh-ready in {time.monotonic() - started:.1f} s; forks={args.forks}; "
              f"load average {' '.join(f'{load:.1f}' for load in os.getloadavg())}", flush=True)
        with LocalSite(Path(tmp) / "site") as site:
            site_inventory = with_vars(inventory, site.enrol_vars(enrol_verify=False, enrol_token_user="root"),
                                       Path(tmp) / "inventory.json")
            data = json.loads(site_inventory.read_text())
            hosts = data["all"]["children"]["fleet"]["hosts"]
            due = sorted(hosts)[::10]
            for name in due:
                hosts[name].update(enrol_cert_validity_days=1, enrol_cert_renew_before_days=0)
            site_inventory.write_text(json.dumps(data, indent=2))
            enrolled = run_play(enrol, site_inventory, args.forks)
            print(enrolled.summary("enrol.yml (setup)"), flush=True)

            base = baseline_play(inventory, args.forks)
            print(base.summary("baseline (5 tasks)"), flush=True)
            nothing = run_play(rotate, site_inventory, args.forks, ["-e", "rotate_renew_before=12h"])
            print(nothing.summary("rotate.yml, nothing due"), flush=True)
            again = run_play(rotate, site_inventory, args.forks, ["-e", "rotate_renew_before=12h"])
            print(again.summary("rotate.yml, nothing due, rerun"), flush=True)
            some = run_play(rotate, site_inventory, args.forks,
                            ["-e", json.dumps({"rotate_renew_before": "2d", "rotate_cert_validity_days": 30})])
            print(some.summary(f"rotate.yml, {len(due)} of {args.hosts} due"), flush=True)
    print(f"nothing due / baseline = {nothing.wall_seconds / base.wall_seconds:.2f}x wall (goal <= 1.0x), "
          f"{nothing.machine_cpu_seconds / base.machine_cpu_seconds:.2f}x CPU; rerun "
          f"{again.wall_seconds / base.wall_seconds:.2f}x wall, changed on rerun: {again.changed}")
    print(f"10% due / baseline     = {some.wall_seconds / base.wall_seconds:.2f}x wall, "
          f"{some.machine_cpu_seconds / base.machine_cpu_seconds:.2f}x CPU")
    failed = enrolled.failed_hosts + nothing.failed_hosts + again.failed_hosts + some.failed_hosts
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
