"""Role rolesanywhere.fleet.ca on localhost: file backend (encrypted key) and SoftHSM2 token backend."""
import json
import os
import re
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.integration.x509.builders import ec_key, make_csr, name, pem
from tests.support.ansible import run_playbook
from tests.support.ca import openssl_verify_client

PLAYBOOK = """
- name: Create the CA
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: rolesanywhere.fleet.ca
  tasks:
    - name: Save the published facts
      ansible.builtin.copy:
        dest: "{{ facts_out }}"
        content: "{{ {'pem': ca_bundle_pem, 'path': ca_bundle_path, 'database': ca_database_path,
                     'serial': ca_certificate_serial} | to_json }}"
        mode: "0600"
      when: not ansible_check_mode
    - name: Issue a client certificate with the published CA key option
      rolesanywhere.fleet.x509_issue:
        csr: "{{ client_csr }}"
        path: "{{ client_cert_path }}"
        ca_cert_path: "{{ ca_bundle_path }}"
        ca_key: "{{ ca_signing_key }}"
"""

pytestmark = pytest.mark.slow  # each test runs ansible-playbook two or three times


def recap(proc):
    match = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", proc.stdout)
    assert match, proc.stdout
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def run_role(tmp_path, extra_vars, check=False):
    playbook = tmp_path / "ca.yml"
    playbook.write_text(PLAYBOOK)
    args = ["--check", "--diff"] if check else ["--diff"]
    csr_path = tmp_path / "client.csr"
    if not csr_path.exists():  # one client key for all runs, so reruns can be unchanged
        csr_path.write_text(pem(make_csr(ec_key(), name(O="Example", CN="role-client"))))
    return run_playbook(playbook, extra_vars=dict(
        extra_vars, facts_out=str(tmp_path / "facts.json"), client_csr=csr_path.read_text(),
        client_cert_path=str(tmp_path / "client.pem")), args=args)


def test_role_file_backend(tmp_path):
    ca_dir = tmp_path / "ca"
    extra = dict(ca_directory=str(ca_dir), ca_key_passphrase="vaulted-passphrase-42",
                 ca_subject={"O": "Example", "CN": "Fleet CA"})
    dry = run_role(tmp_path, extra, check=True)
    assert recap(dry)["changed"] >= 1 and not ca_dir.exists()
    assert "vaulted-passphrase-42" not in dry.stdout + dry.stderr

    first = run_role(tmp_path, extra)
    assert recap(first)["failed"] == 0 and "vaulted-passphrase-42" not in first.stdout + first.stderr
    facts = json.loads((tmp_path / "facts.json").read_text())
    assert facts["path"] == str(ca_dir / "ca.pem") and facts["pem"] == (ca_dir / "ca.pem").read_text()
    assert stat.S_IMODE(os.stat(ca_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(ca_dir / "ca.key").st_mode) == 0o600
    key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), b"vaulted-passphrase-42")
    cert = x509.load_pem_x509_certificate(facts["pem"].encode())
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert cert.subject.rfc4514_string() == "CN=Fleet CA,O=Example"

    assert openssl_verify_client(ca_dir / "ca.pem", tmp_path / "client.pem").returncode == 0

    second = run_role(tmp_path, extra)
    assert recap(second)["changed"] == 0, second.stdout
    assert json.loads((tmp_path / "facts.json").read_text())["serial"] == facts["serial"]


def test_role_refuses_unencrypted_file_key(tmp_path):
    playbook = tmp_path / "ca.yml"
    playbook.write_text(PLAYBOOK)
    proc = run_playbook(playbook, extra_vars=dict(ca_directory=str(tmp_path / "ca"), facts_out=str(tmp_path / "f")),
                        check=False)
    assert proc.returncode != 0 and "ca_key_passphrase" in proc.stdout
    assert not (tmp_path / "ca").exists()


def test_role_token_backend(tmp_path, softhsm_token):
    extra = dict(ca_directory=str(tmp_path / "ca"), ca_key_backend="token",
                 ca_token_module_path=softhsm_token.module_path, ca_token_label=softhsm_token.token_label,
                 ca_token_pin=softhsm_token.pin, ca_token_env=softhsm_token.env, ca_subject={"CN": "HSM CA"})
    first = run_role(tmp_path, extra)
    assert recap(first)["failed"] == 0
    assert not (tmp_path / "ca" / "ca.key").exists()
    facts = json.loads((tmp_path / "facts.json").read_text())
    cert = x509.load_pem_x509_certificate(facts["pem"].encode())
    assert cert.public_key().curve.name == "secp384r1"
    # The key is on the token, not extractable: pkcs11-tool lists the private key object.
    listing = subprocess.run(["pkcs11-tool", "--module", softhsm_token.module_path, "--list-objects",
                              "--type", "pubkey"], capture_output=True, text=True,
                             env=softhsm_token.process_env(), timeout=30)
    assert "rolesanywhere-ca" in listing.stdout
    assert openssl_verify_client(tmp_path / "ca" / "ca.pem", tmp_path / "client.pem").returncode == 0
    assert softhsm_token.pin not in first.stdout + first.stderr
    second = run_role(tmp_path, extra)
    assert recap(second)["changed"] == 0, second.stdout
