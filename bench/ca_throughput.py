#!/usr/bin/env python3
"""The own CA host as the shared resource of a sliced rollout: issuance throughput at 1, 2 and 4 concurrent callers.

Each caller is one ``ansible-playbook`` (as one slice of a sliced job) that issues ``--per-caller`` certificates on
the CA host over SSH: one ``x509_issue`` run per certificate, or with ``--batch`` one run for all of them (the
``requests`` option, as enrol.yml issues a play batch). The CA is an encrypted EC P-384 key
file on a fleet host; the CSRs (EC P-256) are made beforehand. Printed per concurrency: certificates per second,
the mean wall time of one issuance seen by its caller, and the CA database lock wait reported by ``x509_issue``
(mean and max). With ``--database-records`` the CA database is first filled with that many records (a CA that has
issued for a large fleet: every issuance reads and rewrites the whole database under the lock).
Run as root under the fleet lock: ``flock /work/fleet.lock .venv/bin/python bench/ca_throughput.py``.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from tests.fleet import netns_fleet  # noqa: E402
from tests.support import ca_host  # noqa: E402
from tests.support.ansible import ansible_env  # noqa: E402
from tests.support.ca import make_file_ca  # noqa: E402

PASSPHRASE = "bench-ca-passphrase"


def csr_pem(common_name):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bench"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def caller_play(csrs, results_path, batch):
    """One x509_issue run per certificate (a loop), or one run for all (``requests``, as enrol.yml issues a batch)."""
    ca = {"ca_cert_path": f"{ca_host.CA_DIRECTORY}/ca.pem",
          "ca_key": {"path": f"{ca_host.CA_DIRECTORY}/ca.key", "passphrase": PASSPHRASE}}
    issued = f"{ca_host.CA_DIRECTORY}/issued"
    if batch:
        task = {"rolesanywhere.fleet.x509_issue": dict(ca, requests=[{"csr": c["csr"], "path": f"{issued}/{c['name']}.pem"}
                                                                     for c in csrs])}
    else:
        task = {"rolesanywhere.fleet.x509_issue": dict(ca, csr="{{ item.csr }}", path=f"{issued}/{{{{ item.name }}}}.pem"),
                "loop": "{{ csrs }}", "loop_control": {"label": "{{ item.name }}"}}
    return [{"hosts": "ca", "gather_facts": False, "vars": {"csrs": csrs}, "tasks": [
        {"name": "Issue", **task, "register": "issued", "no_log": True},
        {"name": "Keep the lock waits", "delegate_to": "localhost", "ansible.builtin.copy": {
            "dest": str(results_path),
            "content": "{{ issued.results | map(attribute='lock_wait_seconds') | list | to_json }}"}}]}]


def fill_database(address, records):
    """``records`` fake entries in the CA database (serials that cannot collide with real 159-bit ones)."""
    entries = [{"serial": format(i + 1, "x"), "subject": f"CN=old-{i},O=Bench", "not_after": "2027-01-01T00:00:00+00:00",
                "status": "issued", "revocation_date": None, "revocation_reason": None} for i in range(records)]
    data = json.dumps({"version": 1, "crl_number": 0, "certificates": entries}).encode()
    ca_host.ssh(address, f"umask 077 && cat > {ca_host.CA_DIRECTORY}/ca.db.json", input=data)


def measure(callers, per_caller, inventory, workdir, round_id, batch):
    processes, results = [], []
    for c in range(callers):
        csrs = [{"name": f"r{round_id}-c{c}-{i}", "csr": csr_pem(f"r{round_id}-c{c}-{i}")} for i in range(per_caller)]
        play, result = workdir / f"caller-{round_id}-{c}.yml", workdir / f"waits-{round_id}-{c}.json"
        play.write_text(json.dumps(caller_play(csrs, result, batch)))
        results.append(result)
        processes.append(play)
    env = ansible_env()
    started = time.monotonic()
    runs = [subprocess.Popen([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), str(play)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            for play in processes]
    outputs = [run.communicate()[0] for run in runs]
    wall = time.monotonic() - started
    for run, output in zip(runs, outputs):
        if run.returncode != 0:
            raise SystemExit(f"a caller failed (rc={run.returncode}):\n{output[-3000:]}")
    waits = [w for path in results for w in json.loads(path.read_text())]
    return wall, waits


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--callers", default="1,2,4", help="concurrencies to measure (comma-separated)")
    parser.add_argument("--per-caller", type=int, default=16, help="certificates each caller issues")
    parser.add_argument("--database-records", type=int, default=0)
    parser.add_argument("--batch", action="store_true",
                        help="each caller issues its certificates in one x509_issue run (requests), as enrol.yml does")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/ca_throughput.py needs root (the local fleet uses network namespaces)")
    owner = os.getpid()
    (ca,) = netns_fleet.up(["cabench"], fresh=True, timeout=60, owner_pid=owner)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            make_file_ca(workdir / "ca", passphrase=PASSPHRASE)
            ca_host.install_ca(ca.address, workdir / "ca")
            ca_host.ssh(ca.address, f"install -d -m 0755 {ca_host.CA_DIRECTORY}/issued")
            if args.database_records:
                fill_database(ca.address, args.database_records)
            inventory = ca_host.write_inventory([], ca, workdir / "inventory.json", {})
            print(f"CA host {ca.name}: EC P-384 key file; {args.per_caller} certificates per caller; "
                  f"database {args.database_records} records before; "
                  f"{'one run per caller (batch)' if args.batch else 'one run per certificate'}", flush=True)
            for round_id, callers in enumerate(int(c) for c in args.callers.split(",")):
                netns_fleet.close_control_master(ca.address)
                wall, waits = measure(callers, args.per_caller, inventory, workdir, round_id, args.batch)
                total = callers * args.per_caller
                print(f"callers={callers} certificates={total} wall={wall:.1f}s rate={total / wall:.2f}/s "
                      f"per_issue={wall * callers / total:.2f}s lock_wait_mean={statistics.mean(waits) * 1000:.1f}ms "
                      f"lock_wait_max={max(waits) * 1000:.1f}ms", flush=True)
            serials = [e["serial"] for e in ca_host.read_ca(ca.address).database["certificates"]]
            print(f"database: {len(serials)} records, duplicate serials {len(serials) - len(set(serials))}")
    finally:
        netns_fleet.remove([ca.name], owner_pid=owner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
