"""Fixtures for the AWS-side tests: moto (IAM, STS, ACM PCA) and ra_local from tests/support/aws.py, as admin."""
import pytest

from tests.support.ansible import run_module  # noqa: F401
from tests.support.aws import moto_server, ra_endpoint  # noqa: F401
from tests.support.ca import file_ca, make_file_ca  # noqa: F401


@pytest.fixture(scope="session")
def moto_url(moto_server):
    return moto_server.endpoint


@pytest.fixture(scope="session")
def ra_url(ra_endpoint):
    return ra_endpoint.url


@pytest.fixture(scope="session")
def iam_conn(moto_server):
    """Module connection options for IAM/STS/ACM PCA on moto, with the admin user's keys."""
    url = moto_server.endpoint
    return dict(
        region=moto_server.region,
        endpoint_url=url,
        endpoint_urls={"iam": url, "sts": url, "acm-pca": url},
        access_key=moto_server.admin.access_key_id,
        secret_key=moto_server.admin.secret_access_key,
    )


@pytest.fixture(scope="session")
def ra_conn(ra_endpoint, iam_conn):
    """Module connection options: Roles Anywhere at ra_local, IAM/STS/ACM PCA at moto."""
    return dict(iam_conn, endpoint_url=ra_endpoint.url)


@pytest.fixture(scope="session")
def boto(moto_server, ra_endpoint):
    """Admin boto3 clients: ``boto("iam")`` on moto, ``boto("rolesanywhere")`` on ra_local."""

    def client(service, endpoint_url=None):
        if service == "rolesanywhere":
            return ra_endpoint.client()
        return moto_server.client(service)

    return client


@pytest.fixture(scope="session")
def private_ca(boto):
    """An ACTIVE root CA in moto's ACM PCA: returns (arn, CA certificate PEM)."""
    pca = boto("acm-pca")
    arn = pca.create_certificate_authority(
        CertificateAuthorityConfiguration={
            "KeyAlgorithm": "RSA_2048",
            "SigningAlgorithm": "SHA256WITHRSA",
            "Subject": {"CommonName": "fleet test private CA", "Organization": "rolesanywhere.fleet"},
        },
        CertificateAuthorityType="ROOT",
    )["CertificateAuthorityArn"]
    csr = pca.get_certificate_authority_csr(CertificateAuthorityArn=arn)["Csr"]
    root_arn = pca.issue_certificate(
        CertificateAuthorityArn=arn,
        Csr=csr.encode(),
        SigningAlgorithm="SHA256WITHRSA",
        TemplateArn="arn:aws:acm-pca:::template/RootCACertificate/V1",
        Validity={"Value": 3650, "Type": "DAYS"},
    )["CertificateArn"]
    ca_pem = pca.get_certificate(CertificateAuthorityArn=arn, CertificateArn=root_arn)["Certificate"]
    pca.import_certificate_authority_certificate(CertificateAuthorityArn=arn, Certificate=ca_pem.encode())
    return arn, ca_pem
