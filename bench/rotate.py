#!/usr/bin/env python3
"""rotate.yml on a local fleet against the trivial 5-task baseline play, measured in the same run.

The fleet is enrolled with 30-day certificates except every tenth host (10%), which gets a 1-day one. Prints
the baseline, rotate.yml with nothing due (renew before 12h), its rerun, and rotate.yml with the 10% due
(renew before 2d), and the ratios (goals: nothing due <= 1.0x, 10% due <= 0.5x the baseline wall time).

With ``--log DIR`` each run writes its Ansible log there, and the slowest tasks of the 10%-due run are printed
(time from each task's banner to the next one's: where the wall time goes).

Run as root: ``.venv/bin/python bench/rotate.py [--hosts 30] [--forks 10] [--log DIR]``.
"""
import argparse
import collections
import datetime
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.fleet import with_vars  # noqa: E402
from bench.fleet_baseline import baseline_play, local_fleet, run_play  # noqa: E402
from tests.site import LocalSite  # noqa: E402


def slowest_tasks(log_path, count=12):
    """(seconds, task name) of the ``count`` slowest tasks in an Ansible log, slowest first."""
    banner = re.compile(r"^(\S+ \S+),(\d+) .*\| (TASK \[.*?\]|PLAY RECAP)")
    marks = [(datetime.datetime.fromisoformat(f"{m.group(1)}.{m.group(2)}"), m.group(3))
             for m in map(banner.match, Path(log_path).read_text().splitlines()) if m]
    spent = collections.Counter()
    for index, (started, name) in enumerate(marks[:-1]):
        spent[name] += (marks[index + 1][0] - started).total_seconds()
    return [(seconds, name) for name, seconds in spent.most_common(count)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--log", type=Path, help="directory for the runs' Ansible logs; prints the slowest tasks")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/rotate.py needs root (the local fleet uses network namespaces)")
    enrol, rotate = REPO / "playbooks" / "enrol.yml", REPO / "playbooks" / "rotate.yml"
    if args.log:
        args.log.mkdir(parents=True, exist_ok=True)

    def logged(name):
        return {"ANSIBLE_LOG_PATH": str(args.log / f"{name}.log")} if args.log else None

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
            enrolled = run_play(enrol, site_inventory, args.forks, env=logged("enrol"))
            print(enrolled.summary("enrol.yml (setup)"), flush=True)

            base = baseline_play(inventory, args.forks)
            print(base.summary("baseline (5 tasks)"), flush=True)
            nothing = run_play(rotate, site_inventory, args.forks, ["-e", "rotate_renew_before=12h"],
                               env=logged("rotate-nothing-due"))
            print(nothing.summary("rotate.yml, nothing due"), flush=True)
            again = run_play(rotate, site_inventory, args.forks, ["-e", "rotate_renew_before=12h"],
                             env=logged("rotate-rerun"))
            print(again.summary("rotate.yml, nothing due, rerun"), flush=True)
            some = run_play(rotate, site_inventory, args.forks,
                            ["-e", json.dumps({"rotate_renew_before": "2d", "rotate_cert_validity_days": 30})],
                            env=logged("rotate-some-due"))
            print(some.summary(f"rotate.yml, {len(due)} of {args.hosts} due"), flush=True)
    print(f"nothing due / baseline = {nothing.wall_seconds / base.wall_seconds:.2f}x wall (goal <= 1.0x), "
          f"{nothing.machine_cpu_seconds / base.machine_cpu_seconds:.2f}x CPU; rerun "
          f"{again.wall_seconds / base.wall_seconds:.2f}x wall, changed on rerun: {again.changed}")
    print(f"10% due / baseline     = {some.wall_seconds / base.wall_seconds:.2f}x wall (goal <= 0.5x), "
          f"{some.machine_cpu_seconds / base.machine_cpu_seconds:.2f}x CPU")
    if args.log:
        print("slowest tasks of the run with 10% due (seconds, banner to banner):")
        for seconds, name in slowest_tasks(args.log / "rotate-some-due.log"):
            print(f"  {seconds:6.2f}  {name}")
    runs = (enrolled, nothing, again, some)
    for failure in (line for run in runs for line in run.failures):
        print(failure)
    return 0 if sum(run.failed_hosts for run in runs) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
