import datetime
import hashlib
import json
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ansible_collections.rolesanywhere.fleet.plugins.module_utils._host_state import RenewBefore, certificate_summary, classify

NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.timezone.utc)


def make_cert(days_valid, started_days_ago=0):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Innovation"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "web01")])
    start = NOW - datetime.timedelta(days=started_days_ago)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(0xABC123).not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days_valid))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(Encoding.PEM)


@pytest.mark.parametrize(
    "days_valid, started_days_ago, renew_before, expected",
    [
        (90, 0, "33%", "ok"),
        (90, 70, "33%", "due"),          # 20 of 90 days left < 29.7
        (90, 50, "30d", "ok"),           # 40 days left
        (90, 61, "30d", "due"),          # 29 days left
        (90, 91, "30d", "expired"),
        (1, 0, "12h", "ok"),
        (1, 0, "86400", "due"),
    ],
)
def test_classify_by_window(days_valid, started_days_ago, renew_before, expected):
    summary = certificate_summary(make_cert(days_valid, started_days_ago))
    assert classify(summary, RenewBefore(renew_before), NOW)[0] == expected


def test_a_recorded_error_marks_a_valid_host_failed_but_not_an_expired_one():
    assert classify(certificate_summary(make_cert(90)), RenewBefore("33%"), NOW, "issuer unreachable")[0] == "failed"
    assert classify(certificate_summary(make_cert(90, 100)), RenewBefore("33%"), NOW, "x")[0] == "expired"
    assert classify(None, RenewBefore("33%"), NOW) == ("failed", None)


def test_summary_fields():
    summary = certificate_summary(make_cert(90))
    assert summary["serial"] == "abc123"
    assert summary["subject"] == "CN=web01,OU=Innovation"
    assert summary["lifetime_seconds"] == 90 * 86400


@pytest.mark.parametrize("bad", ["soon", "0%", "150%", "-3d", "3y"])
def test_renew_before_rejects_bad_values_with_the_fix(bad):
    with pytest.raises(ValueError, match="renew_before"):
        RenewBefore(bad)


def test_module_check_apply_rerun_and_volatile_timestamps(tmp_path, module):
    cert = tmp_path / "host.pem"
    cert.write_bytes(make_cert(90))
    state_path = tmp_path / "facts.d" / "rolesanywhere.fact"
    args = {"path": str(state_path), "certificate_path": str(cert),
            "updates": {"helper_impl": "python", "last_verified_at": "2026-11-27T12:00:00Z"}}

    checked = module("rolesanywhere_host_state", args, check_mode=True, diff=True)
    assert checked.changed and not state_path.exists()
    assert checked["diff"]["after"]["helper_impl"] == "python"

    applied = module("rolesanywhere_host_state", args)
    assert applied.changed and applied["host_state"]["status"] == "ok"
    assert stat.S_IMODE(os.stat(state_path).st_mode) == 0o644
    stored = json.loads(state_path.read_text())
    assert stored["serial"] == "abc123" and stored["helper_impl"] == "python"

    args["updates"]["last_verified_at"] = "2026-11-27T13:00:00Z"
    rerun = module("rolesanywhere_host_state", args)
    assert not rerun.changed
    assert json.loads(state_path.read_text())["last_verified_at"] == "2026-11-27T13:00:00Z"

    failed = module("rolesanywhere_host_state", {"path": str(state_path), "updates": {"last_error": "issuer down"}})
    assert failed.changed and failed["host_state"]["status"] == "failed"

    queried = module("rolesanywhere_host_state", {"path": str(state_path), "state": "query"})
    assert not queried.changed and queried["host_state"]["last_error"] == "issuer down"


def test_module_refuses_a_missing_certificate_and_writes_nothing(tmp_path, module):
    state_path = tmp_path / "rolesanywhere.fact"
    result = module("rolesanywhere_host_state", {"path": str(state_path), "certificate_path": str(tmp_path / "nope.pem")})
    assert result.failed and "cannot read certificate" in result["msg"]
    assert not state_path.exists()


def test_converged_only_with_the_same_inputs_and_no_drift(tmp_path, module):
    cert = tmp_path / "host.pem"
    cert.write_bytes(make_cert(90))
    config = tmp_path / "config"
    config.write_text("[profile ra]\n")
    state_path = tmp_path / "rolesanywhere.fact"
    recorded = module("rolesanywhere_host_state", {
        "path": str(state_path), "certificate_path": str(cert), "fingerprint": "inputs-1",
        "managed_files": [str(cert), str(config)]})
    assert recorded.changed and recorded["converged"]

    def query(fingerprint):
        return module("rolesanywhere_host_state", {"path": str(state_path), "state": "query", "fingerprint": fingerprint})

    assert query("inputs-1")["converged"]
    assert not query("inputs-2")["converged"]           # the inventory asks for something else
    config.write_text("[profile ra]\nregion = x\n")
    assert not query("inputs-1")["converged"]           # a managed file drifted
    config.write_text("[profile ra]\n")
    assert query("inputs-1")["converged"]
    config.unlink()
    assert not query("inputs-1")["converged"]           # a managed file is gone


def test_verification_due_after_the_interval(tmp_path, module):
    state_path = tmp_path / "rolesanywhere.fact"
    never = module("rolesanywhere_host_state", {"path": str(state_path), "state": "query"})
    assert never["verification_due"]
    recent = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
    module("rolesanywhere_host_state", {"path": str(state_path),
                                        "updates": {"last_verified_at": recent.strftime("%Y-%m-%dT%H:%M:%SZ")}})
    query = {"path": str(state_path), "state": "query"}
    assert not module("rolesanywhere_host_state", dict(query, verify_interval=3600))["verification_due"]
    assert module("rolesanywhere_host_state", dict(query, verify_interval=300))["verification_due"]


def test_summary_of_a_known_certificate_comes_from_the_state_and_a_changed_one_is_read():
    pem = make_cert(90)
    summary = certificate_summary(pem)
    assert summary["certificate_sha256"] == hashlib.sha256(pem).hexdigest()
    # The same certificate: the recorded summary is the answer (the marker proves the file was not parsed).
    recorded = dict(summary, subject="CN=recorded")
    assert certificate_summary(pem, recorded)["subject"] == "CN=recorded"
    # Another certificate (a user swapped the file, or a renewal): parsed, whatever the state says.
    other = make_cert(30)
    assert certificate_summary(other, recorded)["subject"] == summary["subject"]
    assert certificate_summary(other, recorded)["not_after"] != summary["not_after"]
