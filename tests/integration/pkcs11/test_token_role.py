"""The token role on localhost (connection local) with a SoftHSM2 configuration under tmp_path."""
import getpass
import re
import stat
from pathlib import Path

import pytest

from tests.integration.pkcs11.helpers import private_key_objects
from tests.support.ansible import run_module, run_playbook
from tests.support.tokens import SOFTHSM2_MODULE, TPM2_MODULE, Token

PLAYBOOK = Path(__file__).parent / "playbooks" / "token_role.yml"


def _recap(stdout):
    match = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", stdout)
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def test_token_role_softhsm2_check_apply_rerun(tmp_path):
    conf = tmp_path / "etc" / "softhsm2.conf"
    tokendir = tmp_path / "tokens"
    pin_file = tmp_path / "secrets" / "token.pin"
    extra_vars = dict(
        token_type="softhsm2", token_label="ra-role", token_so_pin="87654321", token_user_pin="13579",
        token_user=getpass.getuser(), token_install_packages=False, token_softhsm2_conf=str(conf),
        token_softhsm2_tokendir=str(tokendir), token_pin_file=str(pin_file),
    )

    checked = run_playbook(PLAYBOOK, extra_vars=extra_vars, args=["--check", "--diff"])
    assert _recap(checked.stdout)["changed"] > 0
    assert not conf.exists() and not tokendir.exists() and not pin_file.exists()
    assert "13579" not in checked.stdout and "87654321" not in checked.stdout

    applied = run_playbook(PLAYBOOK, extra_vars=extra_vars)
    assert _recap(applied.stdout)["changed"] > 0
    assert stat.S_IMODE(pin_file.stat().st_mode) == 0o600 and pin_file.read_text() == "13579"
    assert stat.S_IMODE(tokendir.stat().st_mode) == 0o700
    assert f"directories.tokendir = {tokendir}" in conf.read_text()
    assert "13579" not in applied.stdout and "87654321" not in applied.stdout

    rerun = run_playbook(PLAYBOOK, extra_vars=extra_vars)
    assert _recap(rerun.stdout) == dict(ok=_recap(rerun.stdout)["ok"], changed=0, unreachable=0, failed=0)
    rechecked = run_playbook(PLAYBOOK, extra_vars=extra_vars, args=["--check"])
    assert _recap(rechecked.stdout)["changed"] == 0

    # The token works with the PIN file the role wrote.
    token = Token(SOFTHSM2_MODULE, "ra-role", "13579", "87654321", {"SOFTHSM2_CONF": str(conf)})
    args = dict(module_path=SOFTHSM2_MODULE, token_label="ra-role", pin_file=str(pin_file),
                token_env={"SOFTHSM2_CONF": str(conf)}, label="role-key")
    created = run_module("pkcs11_key", args)
    assert created.changed, created.get("msg")
    assert list(private_key_objects(token)) == ["role-key"]


def test_token_role_refuses_custom_without_library(tmp_path):
    proc = run_playbook(PLAYBOOK, extra_vars=dict(token_type="custom", token_user_pin="13579",
                                                  token_install_packages=False,
                                                  token_pin_file=str(tmp_path / "pin")), check=False)
    assert proc.returncode != 0 and "token_type custom needs token_module_path" in proc.stdout
    assert not (tmp_path / "pin").exists()


def test_token_role_argument_spec_rejects_unknown_type(tmp_path):
    proc = run_playbook(PLAYBOOK, extra_vars=dict(token_type="yubikey", token_user_pin="13579"), check=False)
    assert proc.returncode != 0 and "token_type" in proc.stdout and "yubikey" in proc.stdout


@pytest.mark.tpm
def test_token_role_tpm2_on_swtpm(swtpm, tmp_path):
    store = tmp_path / "store"
    pin_file = tmp_path / "token.pin"
    passthrough = {name: value for name, value in swtpm.env.items() if name != "TPM2_PKCS11_TCTI"}
    extra_vars = dict(
        token_type="tpm2", token_label="ra-role-tpm", token_so_pin="87654321", token_user_pin="97531",
        token_user=getpass.getuser(), token_install_packages=False, token_tpm2_store=str(store),
        token_tpm2_tcti=swtpm.env["TPM2_PKCS11_TCTI"], token_env=passthrough, token_pin_file=str(pin_file),
    )
    assert _recap(run_playbook(PLAYBOOK, extra_vars=extra_vars).stdout)["changed"] > 0
    assert stat.S_IMODE(store.stat().st_mode) == 0o700 and pin_file.read_text() == "97531"
    assert _recap(run_playbook(PLAYBOOK, extra_vars=extra_vars).stdout)["changed"] == 0
    env = dict(swtpm.env, TPM2_PKCS11_STORE=str(store))
    created = run_module("pkcs11_key", dict(module_path=TPM2_MODULE, token_label="ra-role-tpm",
                                            pin_file=str(pin_file), token_env=env, label="role-key"))
    assert created.changed and created["attributes"]["extractable"] is False, created.get("msg")


def test_token_role_requires_user_pin(tmp_path):
    proc = run_playbook(PLAYBOOK, extra_vars=dict(token_install_packages=False,
                                                  token_pin_file=str(tmp_path / "pin")), check=False)
    assert proc.returncode != 0 and "token_user_pin" in proc.stdout
    assert not (tmp_path / "pin").exists()
