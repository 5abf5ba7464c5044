"""The bundled helper with a key on a TPM 2.0 (tpm2-pkcs11 on swtpm): the path AWS's helper leaves unverified."""
import json
import re
import subprocess

import pytest

from tests.support.ansible import run_module
from tests.support.tokens import swtpm, tpm_token  # noqa: F401

pytestmark = [pytest.mark.tpm, pytest.mark.slow]


@pytest.mark.parametrize("key", [dict(), dict(key_type="rsa", size=2048)], ids=["ec-p256", "rsa-2048"])
def test_credential_process_with_tpm_key(stand, installed_helper, tpm_token, tmp_path, key):  # noqa: F811
    created = run_module("pkcs11_key", tpm_token.module_args(label="ra-tpm", **key))
    assert created.changed, created.get("msg")
    cert_path = tmp_path / "tpm.pem"
    stand.issue(cert_path, public_key=created["public_key"].encode(), cn="tpm-host.fleet.test")
    pin_file = tmp_path / "pin"
    pin_file.write_text(tpm_token.pin)
    pin_file.chmod(0o600)
    args = stand.helper_args(certificate=cert_path,
                             private_key=f"pkcs11:token={tpm_token.token_label};object=ra-tpm"
                                         f"?pin-source=file:{pin_file}")
    args[args.index("--pkcs11-lib") + 1] = tpm_token.module_path
    proc = subprocess.run([str(installed_helper), *args], capture_output=True, text=True,
                          env=stand.env(**tpm_token.env), timeout=120)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["AccessKeyId"].startswith("ASIA") and document["SessionToken"]


def lockout_counter(tpm):
    out = tpm.tool(["tpm2_getcap", "properties-variable"]).stdout
    return int(re.search(r"TPM2_PT_LOCKOUT_COUNTER:\s*(0x[0-9a-fA-F]+|\d+)", out).group(1), 0)


def test_wrong_pin_costs_the_tpm_exactly_one_attempt(stand, installed_helper, tpm_token, swtpm, tmp_path):  # noqa: F811
    created = run_module("pkcs11_key", tpm_token.module_args(label="ra-tpm"))
    assert created.changed, created.get("msg")
    cert_path = tmp_path / "tpm.pem"
    stand.issue(cert_path, public_key=created["public_key"].encode(), cn="tpm-host.fleet.test")
    args = stand.helper_args(certificate=cert_path,
                             private_key=f"pkcs11:token={tpm_token.token_label};object=ra-tpm?pin-value=999999")
    args[args.index("--pkcs11-lib") + 1] = tpm_token.module_path
    before = lockout_counter(swtpm)
    proc = subprocess.run([str(installed_helper), *args], capture_output=True, text=True,
                          env=stand.env(**tpm_token.env), timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "rejected" in lines[0] and "not retried" in lines[0], proc.stderr
    assert lockout_counter(swtpm) == before + 1
