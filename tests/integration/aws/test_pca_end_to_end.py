"""A certificate issued through ACM PCA (moto) by acmpca_certificate authenticates at ra_local against an
AWS_ACM_PCA trust anchor, with the role and profile made by this collection's modules.

moto's ACM PCA ignores AWS's default client template (EndEntityClientAuthCertificate/V1): it issues such
certificates with no extensions at all, while AWS would add CA:FALSE, digitalSignature and clientAuth. The
endpoint, like AWS, refuses a leaf without CA:FALSE or digitalSignature; so the refusal is asserted for the extension-less
certificate, and authentication is shown with moto's EndEntityCertificate/V1 template, which carries the
extensions AWS's client template gives (CA:FALSE, digitalSignature, clientAuth).
"""
import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _sigv4x509
from tests.support.ansible import run_module

WITH_EXTENSIONS = "arn:aws:acm-pca:::template/EndEntityCertificate/V1"


def csr_for(ou, cn):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou), x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def pca_setup(ra_conn, iam_conn, private_ca):
    ca_arn, _ = private_ca
    anchor = run_module("rolesanywhere_trust_anchor", dict(ra_conn, name="awsside-pca-e2e-anchor", acm_pca_arn=ca_arn))
    assert not anchor.failed, anchor
    anchor_arn = anchor["trust_anchor"]["trust_anchor_arn"]
    role = run_module("iam_role_rolesanywhere", dict(iam_conn, name="awsside-pca-e2e-role", trust_anchor_arns=[anchor_arn],
                                                     x509_subject={"OU": "Innovation"}))
    assert not role.failed, role
    profile = run_module("rolesanywhere_profile", dict(ra_conn, name="awsside-pca-e2e-profile", role_arns=[role["role"]["arn"]]))
    assert not profile.failed, profile
    yield dict(ca_arn=ca_arn, trust_anchor_arn=anchor_arn, role_arn=role["role"]["arn"],
               profile_arn=profile["profile"]["profile_arn"])
    run_module("rolesanywhere_profile", dict(ra_conn, name="awsside-pca-e2e-profile", state="absent"))
    run_module("iam_role_rolesanywhere", dict(iam_conn, name="awsside-pca-e2e-role", state="absent"))
    run_module("rolesanywhere_trust_anchor", dict(ra_conn, name="awsside-pca-e2e-anchor", state="absent"))


def issue(iam_conn, setup, csr, **extra):
    result = run_module("acmpca_certificate", dict(iam_conn, certificate_authority_arn=setup["ca_arn"], csr=csr, **extra))
    assert result.changed and not result.failed, result
    return x509.load_pem_x509_certificate(result["certificate"].encode()), result


def session(ra_url, setup, key, cert):
    return _sigv4x509.create_session(key, cert, trust_anchor_arn=setup["trust_anchor_arn"], profile_arn=setup["profile_arn"],
                                     role_arn=setup["role_arn"], endpoint=ra_url, duration_seconds=900)


def test_pca_certificate_authenticates(ra_url, moto_url, iam_conn, pca_setup):
    key, csr = csr_for("Innovation", "web1")
    cert, result = issue(iam_conn, pca_setup, csr, template_arn=WITH_EXTENSIONS)
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    creds = session(ra_url, pca_setup, key, cert)
    sts = boto3.client("sts", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id=creds.access_key_id,
                       aws_secret_access_key=creds.secret_access_key, aws_session_token=creds.session_token)
    caller = sts.get_caller_identity()["Arn"]
    assert caller == f"arn:aws:sts::123456789012:assumed-role/awsside-pca-e2e-role/{format(cert.serial_number, 'x')}"


def test_trust_policy_ou_is_enforced(ra_url, iam_conn, pca_setup):
    key, csr = csr_for("Marketing", "web2")
    cert, _ = issue(iam_conn, pca_setup, csr, template_arn=WITH_EXTENSIONS)
    with pytest.raises(_sigv4x509.ServiceError) as denied:
        session(ra_url, pca_setup, key, cert)
    assert denied.value.status == 403, denied.value


def test_moto_default_template_certificate_lacks_extensions_and_is_refused(ra_url, iam_conn, pca_setup):
    key, csr = csr_for("Innovation", "web3")
    cert, _ = issue(iam_conn, pca_setup, csr)  # AWS's EndEntityClientAuthCertificate/V1, which moto ignores
    assert len(cert.extensions) == 0  # the moto gap; AWS adds CA:FALSE, digitalSignature, clientAuth
    with pytest.raises(_sigv4x509.ServiceError) as refused:
        session(ra_url, pca_setup, key, cert)
    assert refused.value.status == 403 and "basicConstraints" in refused.value.message, refused.value
