"""x509_issue with requests: a batch issued in one run, each request checked as a single one."""
from cryptography import x509

from tests.integration.x509.builders import ec_key, make_csr, name, pem
from tests.support.ansible import run_module
from tests.support.ca import openssl_verify_client


def batch_args(ca, requests):
    return dict(requests=requests, ca_cert_path=str(ca.cert_path), ca_key=ca.key_option(), validity_days=90,
                renew_before_days=30, require_subject=["CN"])


def request(tmp_path, host, asked_cn=None):
    key = ec_key()
    csr = make_csr(key, name(O="Example", CN=asked_cn or host))
    return key, dict(path=str(tmp_path / f"{host}.pem"), csr=pem(csr), subject={"O": "Example", "CN": host},
                     subject_alt_name=[])


def test_batch_check_apply_rerun_and_one_refusal(tmp_path, file_ca):
    key1, first = request(tmp_path, "host1")
    key2, second = request(tmp_path, "host2")
    second["validity_days"] = 40  # per-host options override the batch's
    _key3, impostor = request(tmp_path, "host3", asked_cn="host1")  # asks for another host's name
    args = batch_args(file_ca, [first, second, impostor])

    check = run_module("x509_issue", args, check_mode=True)
    assert check.changed and [r["path"] for r in check["results"]] == [first["path"], second["path"], impostor["path"]]
    assert not any((tmp_path / f"host{i}.pem").exists() for i in (1, 2, 3)) and not file_ca.database_path.exists()

    applied = run_module("x509_issue", args)
    assert applied.changed and not applied.failed, applied
    results = applied["results"]
    assert [r["changed"] for r in results] == [True, True, False]
    assert results[2]["refused"] and "host1" in results[2]["msg"] and not (tmp_path / "host3.pem").exists()
    for key, item in ((key1, first), (key2, second)):
        cert = x509.load_pem_x509_certificate(open(item["path"], "rb").read())
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()
        assert openssl_verify_client(file_ca.cert_path, item["path"]).returncode == 0
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert lifetime.days in ((40, 41) if item is second else (90, 91))

    rerun = run_module("x509_issue", batch_args(file_ca, [first, second]))
    assert not rerun.changed and [r["reasons"] for r in rerun["results"]] == [[], []], rerun


def test_batch_excludes_single_request_options(tmp_path, file_ca):
    _key1, first = request(tmp_path, "host1")
    refused = run_module("x509_issue", dict(batch_args(file_ca, [first]), path=str(tmp_path / "x.pem")),
                         )
    assert refused.failed and "mutually exclusive" in refused["msg"]
