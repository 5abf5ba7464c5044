"""Class 4: a host is not trusted by its CA. The own CA (x509_issue) and AWS Private CA (acmpca_certificate) sign only
the subject and names configured for the host; a CA near its own end does not re-issue on every run."""
import json

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.ansible import run_module
from tests.support.ca import make_file_ca

CONFIGURED = {"OU": "fleet", "CN": "host1.fleet.test"}


def csr_pem(ou="fleet", cn="host1.fleet.test", sans=()):
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou), x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
    return builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM).decode()


def issue_args(ca, path, csr, **extra):
    args = dict(csr=csr, path=str(path), ca_cert_path=str(ca.cert_path), ca_key=ca.key_option(), subject=CONFIGURED,
                subject_alt_name=["DNS:host1.fleet.test"], validity_days=30, renew_before_days=7)
    args.update(extra)
    return args


def test_own_ca_signs_only_the_configured_subject_and_names(tmp_path):
    ca = make_file_ca(tmp_path / "ca")
    path = tmp_path / "host1.pem"
    for csr, text in ((csr_pem(cn="host2.fleet.test", sans=["host1.fleet.test"]), "asks for subject"),
                      (csr_pem(ou="admins", sans=["host1.fleet.test"]), "asks for subject"),
                      (csr_pem(sans=["host1.fleet.test", "host2.fleet.test"]), "asks for subjectAltName"),
                      (csr_pem(), "asks for subjectAltName")):
        refused = run_module("x509_issue", issue_args(ca, path, csr))
        assert refused.failed and text in refused["msg"], refused
        assert not path.exists() and ca.database().revoked() == []
    database_before = ca.database_path.read_bytes() if ca.database_path.exists() else b""
    assert database_before.count(b"serial") == 0
    issued = run_module("x509_issue", issue_args(ca, path, csr_pem(sans=["host1.fleet.test"])))
    assert issued.changed and not issued.failed, issued
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    assert cert.subject.rfc4514_string() == "CN=host1.fleet.test,OU=fleet"
    # A host that was given a certificate keeps it only as long as it asks for what is configured.
    other = run_module("x509_issue", issue_args(ca, path, csr_pem(cn="host2.fleet.test", sans=["host1.fleet.test"])))
    assert other.failed and x509.load_pem_x509_certificate(path.read_bytes()) == cert


def test_ca_near_its_end_warns_and_keeps_the_host_certificate(tmp_path):
    ca = make_file_ca(tmp_path / "ca", validity_days=10)  # less than renew_before_days (30) left
    path = tmp_path / "host1.pem"
    csr = csr_pem(sans=["host1.fleet.test"])
    serials = []
    for run in range(3):
        result = run_module("x509_issue", issue_args(ca, path, csr, validity_days=365, renew_before_days=30))
        assert not result.failed, result
        assert "renew the CA" in json.dumps(result.get("warnings", [])), result
        serials.append(result["serial"])
        assert result["changed"] == (run == 0), result
    assert len(set(serials)) == 1, serials  # one certificate, capped at the CA's end, not three


def test_private_ca_refuses_another_subject_before_calling_aws(iam_conn, private_ca, tmp_path):
    ca_arn = private_ca[0]
    dest = tmp_path / "host1.pem"
    args = dict(iam_conn, certificate_authority_arn=ca_arn, dest=str(dest), validity_days=30, subject=CONFIGURED,
                subject_alt_name=[])
    refused = run_module("acmpca_certificate", dict(args, csr=csr_pem(ou="admins")))
    assert refused.failed and "asks for subject" in refused["msg"] and not dest.exists(), refused
    issued = run_module("acmpca_certificate", dict(args, csr=csr_pem()))
    assert issued.changed and not issued.failed, issued
    assert x509.load_pem_x509_certificate(dest.read_bytes()).subject.rfc4514_string() == "CN=host1.fleet.test,OU=fleet"
