"""x509_crl: revocation in the CA database and CRLs that openssl verifies and enforces."""
import json
import subprocess

from cryptography import x509

from tests.integration.x509.builders import ec_key, make_csr, name
from tests.support.ansible import run_module
from tests.support.ca import issue_client_cert


def openssl(*argv):
    return subprocess.run(["openssl", *argv], capture_output=True, text=True, timeout=30)


def issue_two(ca, tmp_path):
    paths = []
    for host in ("keep", "gone"):
        path = tmp_path / f"{host}.pem"
        issue_client_cert(ca, make_csr(ec_key(), name(O="Example", CN=host)), path=path)
        paths.append(path)
    return [x509.load_pem_x509_certificate(p.read_bytes()) for p in paths], paths


def crl_args(ca_cert_path, key_option, tmp_path, **extra):
    args = dict(path=str(tmp_path / "ca.crl"), ca_cert_path=str(ca_cert_path), ca_key=key_option)
    args.update(extra)
    return args


def test_revoke_check_apply_rerun(tmp_path, file_ca):
    (keep, gone), (keep_path, gone_path) = issue_two(file_ca, tmp_path)
    serial = format(gone.serial_number, "x")
    args = crl_args(file_ca.cert_path, file_ca.key_option(), tmp_path, revoke=[serial], reason="key_compromise")
    database_before = file_ca.database_path.read_text()

    check = run_module("x509_crl", args, check_mode=True, diff=True)
    assert check.changed and check["newly_revoked"] == [serial] and check["revoked"] == [serial], check
    assert not (tmp_path / "ca.crl").exists() and file_ca.database_path.read_text() == database_before

    applied = run_module("x509_crl", args, diff=True)
    assert applied.changed and applied["crl_number"] == 1, applied
    assert applied["diff"]["before"] == {} and applied["diff"]["after"]["revoked"] == [serial]
    entries = {e["serial"]: e for e in json.loads(file_ca.database_path.read_text())["certificates"]}
    assert entries[serial]["status"] == "revoked" and entries[serial]["revocation_reason"] == "key_compromise"
    assert entries[format(keep.serial_number, "x")]["status"] == "issued"

    # Independent verification: openssl checks the CRL signature and lists the serial with its reason.
    shown = openssl("crl", "-in", str(tmp_path / "ca.crl"), "-CAfile", str(file_ca.cert_path), "-verify",
                    "-noout", "-text")
    assert shown.returncode == 0 and "verify OK" in shown.stderr + shown.stdout, shown
    assert f"Serial Number: {serial.upper()}" in shown.stdout, shown.stdout
    assert "Key Compromise" in shown.stdout
    bundle = tmp_path / "ca+crl.pem"
    bundle.write_text(file_ca.cert_path.read_text() + (tmp_path / "ca.crl").read_text())
    revoked = openssl("verify", "-crl_check", "-CAfile", str(bundle), str(gone_path))
    assert revoked.returncode != 0 and "certificate revoked" in revoked.stdout + revoked.stderr
    still_good = openssl("verify", "-crl_check", "-x509_strict", "-purpose", "sslclient", "-CAfile", str(bundle),
                         str(keep_path))
    assert still_good.returncode == 0, still_good.stdout + still_good.stderr

    crl_bytes = (tmp_path / "ca.crl").read_bytes()
    rerun = run_module("x509_crl", args, diff=True)
    assert not rerun.changed and rerun["newly_revoked"] == [] and rerun["reasons"] == [], rerun
    assert (tmp_path / "ca.crl").read_bytes() == crl_bytes
    assert not run_module("x509_crl", args, check_mode=True).changed

    # nextUpdate too close: a fresh CRL with the next number, same revoked set.
    refreshed = run_module("x509_crl", dict(args, next_update_days=30, renew_before_days=8))
    assert refreshed.changed and refreshed["crl_number"] == 2 and refreshed["revoked"] == [serial], refreshed


def test_empty_crl_and_bad_serials(tmp_path, file_ca):
    args = crl_args(file_ca.cert_path, file_ca.key_option(), tmp_path)
    first = run_module("x509_crl", args)
    assert first.changed and first["revoked"] == []
    assert not run_module("x509_crl", args).changed
    crl_bytes = (tmp_path / "ca.crl").read_bytes()
    for serial, expected in (("not-hex", "is not hex"), ("0xabcdef", "is not in the CA database")):
        result = run_module("x509_crl", dict(args, revoke=[serial]))
        assert result.failed and expected in result["msg"], result
    bad_window = run_module("x509_crl", dict(args, next_update_days=2, renew_before_days=2))
    assert bad_window.failed and "renew_before_days" in bad_window["msg"]
    assert (tmp_path / "ca.crl").read_bytes() == crl_bytes


def test_crl_signed_on_token(tmp_path, token_ca):
    token, key_option = token_ca
    assert run_module("x509_ca", dict(path=str(tmp_path / "ca.pem"), key=key_option, subject={"CN": "Token CA"})).changed
    csr = make_csr(ec_key(), name(O="Example", CN="tok-host"))
    from tests.integration.x509.builders import pem

    issued = run_module("x509_issue", dict(csr=pem(csr), path=str(tmp_path / "leaf.pem"),
                                           ca_cert_path=str(tmp_path / "ca.pem"), ca_key=key_option))
    assert issued.changed, issued
    # The PIN from a 0600 file this time, as the role's token setup leaves it.
    pin_file = tmp_path / "pin"
    pin_file.write_text(token.pin + "\n")
    pin_file.chmod(0o600)
    file_key_option = {k: v for k, v in key_option.items() if k != "pin"}
    file_key_option["pin_file"] = str(pin_file)
    args = crl_args(tmp_path / "ca.pem", file_key_option, tmp_path, revoke=[issued["serial"]])
    applied = run_module("x509_crl", args)
    assert applied.changed and applied["revoked"] == [issued["serial"]], applied
    shown = openssl("crl", "-in", str(tmp_path / "ca.crl"), "-CAfile", str(tmp_path / "ca.pem"), "-verify", "-noout")
    assert shown.returncode == 0 and "verify OK" in shown.stderr + shown.stdout
    assert not run_module("x509_crl", args).changed
