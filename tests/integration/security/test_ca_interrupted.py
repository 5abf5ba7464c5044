"""Class 5 on the CA host: x509_issue killed (SIGKILL) right after it wrote the certificate file, or right after it
wrote the CA database. Afterwards the database holds no record of a certificate that exists nowhere (every serial
it holds for this path is the file's), and the rerun records a certificate the database lacks, issues nothing new
for it, and a third run changes nothing."""
import json
import subprocess
import sys

import pytest
from cryptography import x509

from tests.integration.x509.builders import ec_key, make_csr, name, pem
from tests.support.ansible import ansible_env, run_module

# The module, SIGKILLed by itself right after the os.replace() that puts the file named argv[3] in place.
KILLED_AFTER_REPLACE = r'''
import os, runpy, signal, sys
module, args, victim = sys.argv[1:4]
real_replace = os.replace

def replace(src, dst, *a, **kw):
    real_replace(src, dst, *a, **kw)
    if os.path.basename(str(dst)) == victim:
        os.kill(os.getpid(), signal.SIGKILL)

os.replace = replace
sys.argv = [module, args]
runpy.run_module(module, run_name="__main__")
'''


def database_serials(ca):
    if not ca.database_path.exists():
        return []
    return [entry["serial"] for entry in json.loads(ca.database_path.read_text())["certificates"]]


def file_serial(path):
    return format(x509.load_pem_x509_certificate(path.read_bytes()).serial_number, "x") if path.exists() else None


@pytest.mark.parametrize("killed_after", ["leaf.pem", "ca.db.json"])
def test_issue_killed_between_its_writes_leaves_no_orphan_and_the_rerun_reconciles(tmp_path, file_ca, killed_after):
    leaf = tmp_path / "leaf.pem"
    args = dict(csr=pem(make_csr(ec_key(), name(O="Example", OU="fleet", CN="host1"))), path=str(leaf),
                ca_cert_path=str(file_ca.cert_path), ca_key=file_ca.key_option(), validity_days=90, renew_before_days=30)
    args_path = tmp_path / "args.json"
    args_path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_REPLACE, "ansible_collections.rolesanywhere.fleet.plugins.modules.x509_issue",
         str(args_path), file_ca.database_path.name if killed_after == "ca.db.json" else killed_after],
        capture_output=True, text=True, env=ansible_env(), timeout=120, check=False)
    assert killed.returncode == -9, killed.stdout + killed.stderr

    # no orphan: the database knows no serial but the file's (a kill after the file may leave it unrecorded)
    assert set(database_serials(file_ca)) <= {file_serial(leaf)}
    assert leaf.exists()
    serial = file_serial(leaf)

    rerun = run_module("x509_issue", args)
    assert not rerun.get("failed") and rerun["serial"] == serial, rerun  # the certificate is kept, not re-issued
    assert database_serials(file_ca) == [serial]
    entry = json.loads(file_ca.database_path.read_text())["certificates"][0]
    assert entry["status"] == "issued" and entry["subject"] == "CN=host1,OU=fleet,O=Example"
    if killed_after == "leaf.pem":
        assert rerun.changed and "not in the CA database" in rerun["reasons"][0], rerun
    else:
        assert not rerun.changed, rerun

    again = run_module("x509_issue", args)
    assert not again.changed and again["serial"] == serial and database_serials(file_ca) == [serial]
