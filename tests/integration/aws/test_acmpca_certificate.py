"""acmpca_certificate against moto's ACM PCA: check mode -> issue -> idempotence -> renew (diff) -> revoke."""

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.ansible import run_module


def make_csr(cn="web1", ou="Innovation"):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def test_issue_lifecycle(iam_conn, private_ca, tmp_path):
    ca_arn, ca_pem = private_ca
    key, csr = make_csr()
    dest, chain_dest = tmp_path / "cert.pem", tmp_path / "chain.pem"
    args = dict(iam_conn, certificate_authority_arn=ca_arn, csr=csr, dest=str(dest), chain_dest=str(chain_dest),
                validity_days=30)

    checked = run_module("acmpca_certificate", args, check_mode=True, diff=True)
    assert checked.changed and not checked.failed, checked
    assert checked["diff"] == {"before": {}, "after": {"subject": "CN=web1,OU=Innovation"}}
    assert not dest.exists() and not chain_dest.exists()

    issued = run_module("acmpca_certificate", args, diff=True)
    assert issued.changed and not issued.failed, issued
    cert = x509.load_pem_x509_certificate(dest.read_bytes())
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    cert.verify_directly_issued_by(ca)
    assert cert.public_key() == key.public_key()
    assert int(issued["serial"].replace(":", ""), 16) == cert.serial_number
    assert issued["certificate_arn"].startswith(ca_arn + "/certificate/")
    assert x509.load_pem_x509_certificates(chain_dest.read_bytes())[0] == ca
    assert oct(dest.stat().st_mode & 0o777) == "0o644"

    again = run_module("acmpca_certificate", args, diff=True)
    assert not again.changed and not again.failed, again
    assert again["serial"] == issued["serial"] and "certificate_arn" not in again
    # As the enrol role calls it: the host's certificate (a file lookup drops the last newline) plus dest.
    both = run_module("acmpca_certificate", dict(args, current_certificate=dest.read_text().rstrip("\n")))
    assert not both.changed and not both.failed and both["serial"] == issued["serial"], both

    chain_dest.write_text("stale chain\n")
    check_chain = run_module("acmpca_certificate", args, check_mode=True)
    assert check_chain.changed and chain_dest.read_text() == "stale chain\n", check_chain
    fixed_chain = run_module("acmpca_certificate", args)
    assert fixed_chain.changed and fixed_chain["serial"] == issued["serial"], fixed_chain
    assert x509.load_pem_x509_certificates(chain_dest.read_bytes())[0] == ca

    # Renewal when the current certificate is within remaining_days (moto issues for 365 days).
    renewed = run_module("acmpca_certificate", dict(args, remaining_days=400), diff=True)
    assert renewed.changed, renewed
    assert renewed["diff"]["before"]["serial"] == issued["serial"]
    assert renewed["diff"]["after"]["serial"] != issued["serial"]
    assert x509.load_pem_x509_certificate(dest.read_bytes()).serial_number != cert.serial_number

    # Another key's CSR never keeps the old certificate.
    _, other_csr = make_csr()
    other = run_module("acmpca_certificate", dict(iam_conn, certificate_authority_arn=ca_arn, csr=other_csr,
                                                  current_certificate=dest.read_text()))
    assert other.changed and not other.failed, other
    assert x509.load_pem_x509_certificate(other["certificate"].encode()).subject == cert.subject

    revoke = dict(iam_conn, certificate_authority_arn=ca_arn, dest=str(dest), state="absent")
    check_revoke = run_module("acmpca_certificate", revoke, check_mode=True, diff=True)
    assert check_revoke.changed and check_revoke["diff"]["after"]["revoked"]
    revoked = run_module("acmpca_certificate", revoke)
    assert revoked.changed and not revoked.failed, revoked
    assert revoked["serial"] == renewed["serial"]


def test_bad_csr_issues_nothing(iam_conn, private_ca, boto):
    ca_arn, _ = private_ca
    result = run_module("acmpca_certificate", dict(iam_conn, certificate_authority_arn=ca_arn, csr="not a csr"))
    assert result.failed and "cannot be parsed" in result["msg"], result
    result = run_module("acmpca_certificate", dict(iam_conn, certificate_authority_arn=ca_arn, csr=make_csr()[1],
                                                    validity_days=0))
    assert result.failed and "validity_days" in result["msg"], result


def test_unknown_ca_is_a_clear_aws_error(iam_conn):
    result = run_module("acmpca_certificate", dict(
        iam_conn, csr=make_csr()[1],
        certificate_authority_arn="arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/00000000-0000-0000-0000-000000000000"))
    assert result.failed and result["error"]["code"] == "ResourceNotFoundException", result
