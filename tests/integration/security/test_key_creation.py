"""Class 5 at module level (fast, deterministic): pkcs11_key creates keys under a lock on the PIN file, so a second
run waits for the first and finds its key; a public half left by a run killed inside key generation is removed."""
import fcntl
import os
import json
import subprocess
import sys
import tempfile
import time

from tests.support.ansible import ansible_env, run_module

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11


def key_args(token, pin_file, label="enrol-key"):
    return dict(module_path=token.module_path, token_label=token.token_label, pin_file=str(pin_file),
                token_env=dict(token.env), label=label, key_type="ec", curve="secp256r1")


def objects(token, label):
    with _pkcs11.open_token_session(token.spec()) as session:
        return sorted(int(obj[0x0]) for obj in session.get_objects({0x3: label}))  # CKA_CLASS of CKA_LABEL=label


def start_module(args):
    handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    handle.close()
    return subprocess.Popen([sys.executable, "-m", "ansible_collections.rolesanywhere.fleet.plugins.modules.pkcs11_key",
                             handle.name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ansible_env())


def test_a_second_run_waits_for_the_lock_and_creates_no_second_key(softhsm_token, tmp_path):
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm_token.pin)
    pin_file.chmod(0o600)
    holder = os.open(pin_file, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another enrolment is creating keys right now
    waiting = start_module(key_args(softhsm_token, pin_file))
    time.sleep(2)
    assert waiting.poll() is None and objects(softhsm_token, "enrol-key") == []
    with _pkcs11.open_token_session(softhsm_token.spec(), rw=True) as session:  # the first enrolment's key
        _pkcs11.generate_keypair(session, "enrol-key", "ec", curve="secp256r1")
    os.close(holder)
    out, err = waiting.communicate(timeout=60)
    result = json.loads(out)
    assert not result.get("failed") and not result["changed"], (result, err)
    assert objects(softhsm_token, "enrol-key") == [2, 3]  # one public, one private key


def test_a_public_half_left_by_a_killed_generation_is_removed(softhsm_token, tmp_path):
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm_token.pin)
    pin_file.chmod(0o600)
    with _pkcs11.open_token_session(softhsm_token.spec(), rw=True) as session:
        keypair = _pkcs11.generate_keypair(session, "enrol-key", "ec", curve="secp256r1")
        keypair.private.destroy()
    assert objects(softhsm_token, "enrol-key") == [2]
    result = run_module("pkcs11_key", key_args(softhsm_token, pin_file))
    assert result.changed and result["orphans_removed"] == 1, result
    assert objects(softhsm_token, "enrol-key") == [2, 3]
    again = run_module("pkcs11_key", key_args(softhsm_token, pin_file))
    assert not again.changed and objects(softhsm_token, "enrol-key") == [2, 3]
