"""The host side of rotation (module rolesanywhere_rotation, module_utils _rotation) on local files: the due
decision with jitter, the journal a stopped run leaves, and the run lock."""
import datetime
import json
import os
import pathlib
import pwd
import re
import tempfile

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.ansible import run_module

from .conftest import collection_module_utils

_host_state, _rotation = collection_module_utils("_host_state", "_rotation")

NOW = datetime.datetime.now(datetime.timezone.utc)


def write_certificate(path, not_before, not_after):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "host1")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return format(cert.serial_number, "x")


@pytest.fixture
def host(tmp_path):
    """A host enrolled the way enrol leaves it: <pki_dir>/rolesanywhere.pem, 10 of its 30 days left."""
    pki = tmp_path / "pki"
    pki.mkdir()
    serial = write_certificate(pki / "rolesanywhere.pem", NOW - datetime.timedelta(days=20),
                               NOW + datetime.timedelta(days=10))
    args = {"run_id": "run-1", "path": str(tmp_path / "state.fact"), "host": "host1", "pki_dir": str(pki),
            "lock_ttl": 30, "lock_wait": 2}
    return args, serial


def test_begin_check_mode_then_apply_then_rerun(host):
    args, serial = host
    checked = run_module("rolesanywhere_rotation", dict(args, action="begin", renew_before="5d"), check_mode=True)
    assert checked["plan"]["done"] and not checked["plan"]["due"]
    window = float(re.search(r"renewal window ([0-9.]+) days", checked["plan"]["reason"]).group(1))
    assert 4.0 <= window <= 5.0  # 5 days shrunk by this host's jitter (up to 20 %)
    assert checked["changed"]
    with pytest.raises(FileNotFoundError):
        open(args["path"])

    applied = run_module("rolesanywhere_rotation", dict(args, action="begin", renew_before="5d"))
    assert applied["changed"] and applied["plan"]["done"]
    state = json.loads(open(args["path"]).read())
    assert state["rotation_state"] == "ok" and state["serial"] == serial
    assert state["rotation"]["current"]["key_label"] == "rolesanywhere"
    assert json.loads(open(args["path"] + ".lock").read() or "{}") == {}  # nothing to do: the lock is free

    rerun = run_module("rolesanywhere_rotation", dict(args, run_id="run-2", action="begin", renew_before="5d"))
    assert not rerun["changed"]


def test_due_host_gets_a_pending_generation_and_keeps_the_lock(host):
    args, _ = host
    result = run_module("rolesanywhere_rotation", dict(args, action="begin", renew_before="50%"))
    plan = result["plan"]
    assert plan["due"] and not plan["done"] and "inside the renewal window" in plan["reason"]
    assert plan["new"]["key_label"] == plan["new"]["name"] and plan["new"]["name"].startswith("rolesanywhere-")
    assert plan["new"]["certificate"].endswith(plan["new"]["name"] + ".pem")
    keep = run_module("rolesanywhere_rotation", dict(args, run_id="run-9", action="begin", lock_wait=1))
    assert keep["failed"] and "another rotation run (run-1)" in keep["msg"] and "waited 1s" in keep["msg"]


def test_rekey_false_keeps_the_key_label(host):
    args, _ = host
    plan = run_module("rolesanywhere_rotation", dict(args, action="begin", force=True, rekey=False))["plan"]
    assert plan["new"]["key_label"] == "rolesanywhere" and plan["new"]["name"] != "rolesanywhere"


def test_bad_input_is_refused_with_the_fix(host):
    args, _ = host
    result = run_module("rolesanywhere_rotation", dict(args, action="begin", renew_before="soon"))
    assert result["failed"] and "'33%'" in result["msg"]
    result = run_module("rolesanywhere_rotation", dict(args, action="begin", jitter=2))
    assert result["failed"] and "between 0 and 1" in result["msg"]
    missing = run_module("rolesanywhere_rotation", dict(args, action="begin", key_label="other"))
    assert missing["failed"] and "enrol the host first" in missing["msg"]


def journal_after(args, *actions):
    for action in actions:
        result = run_module("rolesanywhere_rotation", dict(args, **action))
        assert not result.get("failed"), result
    return json.loads(open(args["path"]).read())


def installed(args):
    """The install action's arguments, with the enrolled certificate standing in for a new one."""
    return {"action": "install", "certificate_pem": open(os.path.join(args["pki_dir"], "rolesanywhere.pem")).read()}


def test_a_run_stopped_before_the_switch_is_discarded_by_the_next(host):
    args, _ = host
    state = journal_after(args, {"action": "begin", "force": True})
    pending = state["rotation"]["pending"]
    with open(pending["csr"], "w") as csr:  # run-1 made its key and CSR, then died
        csr.write("CSR")
    # run-1 died; its lock expires (ttl 30 from the test's point of view: take it over with a short one)
    lock = _rotation.RunLock(args["path"] + ".lock")
    lock.acquire("run-2", ttl=30, wait=0, clock=lambda: 10 ** 10)
    result = run_module("rolesanywhere_rotation", dict(args, run_id="run-2", action="begin", renew_before="1d"))
    plan = result["plan"]
    assert [g["name"] for g in plan["discard"]] == [pending["name"]] and plan["discard"][0]["delete_key"]
    assert not plan["due"] and not plan["done"]  # leftovers to delete first
    finished = journal_after(dict(args, run_id="run-2"), {"action": "finish"})
    assert not os.path.exists(pending["csr"])
    assert finished["rotation"]["discard"] == [] and "pending" not in finished["rotation"]
    assert finished["rotation_state"] == "ok"


def test_a_run_stopped_mid_switch_is_finished_by_the_next(host):
    args, _ = host
    journal_after(args, {"action": "begin", "force": True}, installed(args))
    _rotation.RunLock(args["path"] + ".lock").release("run-1")
    plan = run_module("rolesanywhere_rotation", dict(args, run_id="run-2", action="begin"))["plan"]
    assert plan["resume"] and plan["new"]["name"] != "rolesanywhere"
    state = journal_after(dict(args, run_id="run-2"), {"action": "switched"})
    assert state["rotation"]["current"] == plan["new"]
    assert state["rotation"]["retiring"]["name"] == "rolesanywhere" and state["rotation"]["retiring"]["delete_key"]


def test_a_pin_refused_before_keygen_never_touches_the_token_again(host):
    args, _ = host
    journal_after(args, {"action": "begin", "force": True})
    result = run_module("rolesanywhere_rotation", dict(args, action="fail", error="PIN rejected", new_key_made=False))
    assert result["undo"]["rollback_configs"] is False
    assert [g["delete_key"] for g in result["undo"]["discard"]] == [False]
    state = journal_after(args, {"action": "release"})
    assert state["rotation_state"] == "failed" and state["last_error"] == "PIN rejected" and state["stuck_since"]
    status = run_module("rolesanywhere_host_state", {"path": args["path"], "state": "query"})["host_state"]["status"]
    assert status == "failed"


def test_failure_mid_switch_asks_for_a_rollback_first(host):
    args, _ = host
    journal_after(args, {"action": "begin", "force": True}, installed(args))
    undo = run_module("rolesanywhere_rotation", dict(args, action="fail", error="x"))["undo"]
    assert undo["rollback_configs"] and undo["discard"] == []
    discard = run_module("rolesanywhere_rotation", dict(args, action="rolled_back"))["discard"]
    assert len(discard) == 1 and discard[0]["delete_key"]


def test_jitter_spreads_a_fleet_over_the_window():
    summary = {"not_after": _host_state.timestamp(NOW + datetime.timedelta(days=9)), "lifetime_seconds": 30 * 86400}
    renew_before = _host_state.RenewBefore("10d")
    due = [_rotation.due_decision(dict(summary, serial=f"{i:x}"), renew_before, 0.2, f"host{i}", NOW)[0]
           for i in range(200)]
    assert 20 < sum(due) < 180  # 9 days left, window 8..10 days: some hosts now, the others in later runs
    again = [_rotation.due_decision(dict(summary, serial=f"{i:x}"), renew_before, 0.2, f"host{i}", NOW)[0]
             for i in range(200)]
    assert due == again
    assert all(_rotation.due_decision(dict(summary, serial="1"), renew_before, 0.0, f"h{i}", NOW)[0] for i in range(5))


def test_a_lost_lock_stops_the_run(tmp_path):
    lock = _rotation.RunLock(str(tmp_path / "lock"))
    lock.acquire("a", ttl=5, wait=0, clock=lambda: 100)
    lock.acquire("b", ttl=5, wait=0, clock=lambda: 200)  # a's lease expired
    with pytest.raises(_rotation.RotationError, match="lost its lock"):
        lock.renew("a", ttl=5, clock=lambda: 201)
    lock.release("b")
    with pytest.raises(_rotation.RotationError, match="lost its lock"):
        lock.renew("a", ttl=5, clock=lambda: 202)  # released by b: a's view of the host may be stale


def test_keys_that_could_not_be_deleted_stay_queued_for_the_next_run(host):
    args, _ = host
    journal_after(args, {"action": "begin", "force": True})  # the new key may exist: the step making it ran
    assert [g["delete_key"] for g in run_module("rolesanywhere_rotation", dict(args, action="fail", error="x"))
            ["undo"]["discard"]] == [True]
    state = journal_after(args, {"action": "release", "keep_discard": True})
    assert len(state["rotation"]["discard"]) == 1
    plan = run_module("rolesanywhere_rotation", dict(args, run_id="run-2", action="begin"))["plan"]
    assert plan["discard"][0]["delete_key"] and not plan["done"]


def test_install_writes_the_files_for_the_owner_and_never_through_a_link(host, tmp_path):
    args, _ = host
    plan = run_module("rolesanywhere_rotation", dict(args, action="begin", force=True, chain=True))["plan"]
    new = plan["new"]
    secret = tmp_path / "secret"
    secret.write_text("root only")
    os.symlink(secret, new["certificate"])  # planted between the decision and the install
    config = tmp_path / "aws-config"
    profile = {"user": "root", "profile": "ra", "config_path": str(config), "certificate": new["certificate"],
               "module_path": "/usr/lib/softhsm/libsofthsm2.so", "token_label": "rolesanywhere",
               "key_label": new["key_label"], "pin_file": str(tmp_path / "pin"),
               "trust_anchor_arn": "arn:aws:rolesanywhere:eu-west-1:111122223333:trust-anchor/a",
               "profile_arn": "arn:aws:rolesanywhere:eu-west-1:111122223333:profile/p",
               "role_arn": "arn:aws:iam::111122223333:role/r"}
    early = run_module("rolesanywhere_rotation", dict(args, action="switched", write_profiles=[profile]))
    assert early["failed"] and "switched without a proven pending generation" in early["msg"]
    assert not config.exists()  # refused before any profile was written
    missing = run_module("rolesanywhere_rotation", dict(args, **installed(args)))
    assert missing["failed"] and new["chain"] in missing["msg"] and "no PEM certificate" in missing["msg"]
    pem = installed(args)["certificate_pem"]
    journal_after(args, dict(installed(args), chain_pem=pem, owner="nobody"))
    nobody = pwd.getpwnam("nobody").pw_uid
    for path in (new["certificate"], new["chain"]):
        info = os.lstat(path)
        assert (oct(info.st_mode), info.st_uid, open(path).read()) == (oct(0o100644), nobody, pem)
    assert secret.read_text() == "root only"
    again = run_module("rolesanywhere_rotation", dict(args, **installed(args), chain_pem=pem))
    assert again["failed"] and "no new generation is being made" in again["msg"]


def test_finish_removes_the_retired_files_without_following_links(host, tmp_path):
    args, _ = host
    target = tmp_path / "target"
    target.write_text("kept")
    plan = run_module("rolesanywhere_rotation", dict(args, action="begin", force=True))["plan"]
    journal_after(args, installed(args), {"action": "switched"})
    retired = plan["current"]
    os.unlink(retired["certificate"])
    os.symlink(target, retired["certificate"])  # the user swapped the old certificate for a link
    state = journal_after(args, {"action": "finish"})
    assert state["rotation_state"] == "renewed" and "retiring" not in state["rotation"]
    assert not os.path.lexists(retired["certificate"]) and target.read_text() == "kept"
    assert os.path.exists(plan["new"]["certificate"])


def test_a_run_stopped_after_the_switch_leaves_the_retirement_to_the_next(host):
    args, _ = host
    install = installed(args)
    first = run_module("rolesanywhere_rotation", dict(args, action="begin", force=True))["plan"]["new"]
    journal_after(args, install, {"action": "switched"})  # run-1 died before its finish
    _rotation.RunLock(args["path"] + ".lock").release("run-1")
    run2 = dict(args, run_id="run-2")
    plan = run_module("rolesanywhere_rotation", dict(run2, action="begin", force=True))["plan"]
    assert plan["retire"]["name"] == "rolesanywhere" and plan["new"]["name"] != first["name"]
    journal_after(run2, install, {"action": "switched"})
    state = json.loads(open(args["path"]).read())["rotation"]
    # run-1's retirement is not lost when run-2 retires its own old generation: both are deleted at the finish
    assert [g["name"] for g in state["discard"]] == ["rolesanywhere"] and state["retiring"]["name"] == first["name"]
    finished = journal_after(run2, {"action": "finish"})["rotation"]
    assert finished["discard"] == [] and "retiring" not in finished
    assert not os.path.exists(os.path.join(args["pki_dir"], "rolesanywhere.pem"))
    assert not os.path.exists(first["certificate"]) and os.path.exists(plan["new"]["certificate"])


def test_acting_as_the_signing_user_happens_in_a_child_with_that_identity():
    shared = tempfile.TemporaryDirectory(dir="/tmp")  # pytest's tmp_path is root's alone
    os.chmod(shared.name, 0o777)
    seen = pathlib.Path(shared.name) / "seen"

    def record():
        print("not JSON")  # must not reach the module's output
        open_fds = {int(fd) for fd in os.listdir("/proc/self/fd")}
        seen.write_text(json.dumps([os.getuid(), os.getgid(), os.getgroups(), os.environ["HOME"],
                                    "RA_TEST_ROOT_ONLY" in os.environ, held in open_fds]))

    held = os.open("/etc/hostname", os.O_RDONLY)  # a descriptor root holds at the fork
    os.environ["RA_TEST_ROOT_ONLY"] = "1"
    try:
        _rotation.run_as("nobody", record)
    finally:
        os.close(held)
        del os.environ["RA_TEST_ROOT_ONLY"]
    nobody = pwd.getpwnam("nobody")
    assert json.loads(seen.read_text()) == [nobody.pw_uid, nobody.pw_gid, [nobody.pw_gid], nobody.pw_dir, False, False]
    assert os.getuid() == 0

    def refuse():
        raise _rotation.RotationError("PIN refused")

    with pytest.raises(_rotation.RotationError, match="^PIN refused$"):
        _rotation.run_as("nobody", refuse)
    with pytest.raises(_rotation.RotationError, match="does not exist"):
        _rotation.run_as("no-such-user-here", record)
    shared.cleanup()


def test_a_failed_retirement_keeps_the_switch_and_the_old_generation_queued(host, tmp_path):
    args, _ = host
    install = installed(args)
    plan = run_module("rolesanywhere_rotation", dict(args, action="begin", force=True))["plan"]
    journal_after(args, install)
    token = {"user": "root", "module_path": str(tmp_path / "missing.so"), "token_label": "rolesanywhere",
             "pin_file": str(tmp_path / "pin")}
    result = run_module("rolesanywhere_rotation", dict(args, action="switched", finish=True, token=token))
    assert result["failed"] and "deleting the old keys rolesanywhere as root" in result["msg"], result
    assert "cannot read pin_file" in result["msg"]
    state = json.loads(open(args["path"]).read())
    assert state["rotation"]["current"]["name"] == plan["new"]["name"]  # the switch stands
    assert state["rotation"]["retiring"]["name"] == "rolesanywhere" and state["rotation"]["retiring"]["delete_key"]
    assert os.path.exists(os.path.join(args["pki_dir"], "rolesanywhere.pem"))  # kept until its key is gone


def test_the_decision_clears_the_new_names_without_following_links(host, tmp_path):
    args, _ = host
    target = tmp_path / "target"
    target.write_text("kept")
    now = datetime.datetime.now(datetime.timezone.utc)
    names = {_rotation.new_generation_name("rolesanywhere", now + datetime.timedelta(seconds=i), set())
             for i in range(30)}  # every name the decision can give in the next 30 seconds
    for name in names:
        for suffix in (".pem", ".csr"):
            os.symlink(target, os.path.join(args["pki_dir"], name + suffix))
    plan = run_module("rolesanywhere_rotation", dict(args, action="begin", force=True))["plan"]
    assert plan["new"]["name"] in names
    links = {entry.split(".")[0] for entry in os.listdir(args["pki_dir"])
             if os.path.islink(os.path.join(args["pki_dir"], entry))}
    assert links == names - {plan["new"]["name"]} and target.read_text() == "kept"
