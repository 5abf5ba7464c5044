#!/usr/bin/env python3
"""A sliced rollout as AWX runs a sliced job template, against one unsliced run measured in the same process.

Both runs enrol fresh hosts cold with ``enrol.yml`` and issue on one CA host of the fleet over SSH: first one
``ansible-playbook`` over all hosts, then K at once, slice i limited to hosts i, i+K, ... . All processes share this
machine's cores, so the speedup shows what slicing costs or gains on one node; on automation controller each slice
runs on its own execution node. The last line is
``sliced: slices=K hosts=N enrolled=N duplicate_serials=0 wall=...s speedup=...x``.
Run as root under the fleet lock: ``flock /work/fleet.lock .venv/bin/python bench/sliced.py --slices 3 --hosts 30``.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fleet import netns_fleet  # noqa: E402
from tests.site import LocalSite  # noqa: E402
from tests.support import ca_host  # noqa: E402
from tests.support.ansible import recap  # noqa: E402
from tests.support.sliced import slices, start_playbook  # noqa: E402

ENROL = REPO / "playbooks" / "enrol.yml"


def rollout(parts, inventory, workdir, label, forks):
    """Run one enrol.yml per part at once; returns (wall seconds, hosts without failures)."""
    env = {"ANSIBLE_FORKS": str(forks)}
    started = time.monotonic()
    runs = [start_playbook(ENROL, inventory, part, workdir / f"{label}-{i}.log", env=env)
            for i, part in enumerate(parts)]
    for run in runs:
        run.wait()
    wall = time.monotonic() - started
    good = []
    for i in range(len(parts)):
        for host, counts in recap((workdir / f"{label}-{i}.log").read_text()).items():
            if counts["failed"] == 0 and counts["unreachable"] == 0:
                good.append(host)
    return wall, good


def enrolled(records, hosts, good):
    return sorted(h for h in hosts if h in good and h in records.issued)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--slices", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--forks", type=int, default=10, help="forks of each slice's ansible-playbook")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/sliced.py needs root (the local fleet uses network namespaces)")
    owner = os.getpid()
    (ca,) = netns_fleet.up(["cabench"], fresh=True, timeout=60, owner_pid=owner)
    try:
        with tempfile.TemporaryDirectory() as tmp, LocalSite(Path(tmp) / "site") as site:
            workdir = Path(tmp)
            ca_host.install_ca(ca.address, site.ca_directory)
            enrol_vars = site.enrol_vars(**ca_host.enrol_ca_vars(site, ca.name))
            walls, counts = {}, {}
            for label, count in (("unsliced", 1), ("sliced", args.slices)):
                hosts = netns_fleet.up(count=args.hosts, fresh=True, timeout=120, owner_pid=owner)
                names = [h.name for h in hosts]
                try:
                    inventory = ca_host.write_inventory(hosts, ca, workdir / f"{label}.json", enrol_vars)
                    walls[label], good = rollout(slices(names, count), inventory, workdir, label, args.forks)
                    counts[label] = len(enrolled(ca_host.read_ca(ca.address), names, good))
                    print(f"{label}: runs={count} hosts={args.hosts} enrolled={counts[label]} "
                          f"wall={walls[label]:.1f}s", flush=True)
                finally:
                    netns_fleet.remove(names, owner_pid=owner)
            serials = [e["serial"] for e in ca_host.read_ca(ca.address).database["certificates"]]
    finally:
        netns_fleet.remove([ca.name], owner_pid=owner)
    duplicates = len(serials) - len(set(serials))
    print(f"sliced: slices={args.slices} hosts={args.hosts} enrolled={counts['sliced']} "
          f"duplicate_serials={duplicates} wall={walls['sliced']:.1f}s "
          f"speedup={walls['unsliced'] / walls['sliced']:.2f}x")
    return 0 if counts["sliced"] == counts["unsliced"] == args.hosts and duplicates == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
