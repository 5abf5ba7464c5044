"""Fixtures for the AWS-side tests: a moto server (IAM, STS, ACM PCA) on loopback."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.ansible import run_module  # noqa: F401
from tests.support.ca import file_ca, make_file_ca  # noqa: F401

REPO = Path(__file__).resolve().parents[3]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_url():
    port = _free_port()
    env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true")
    proc = subprocess.Popen(
        [str(REPO / ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def aws_env():
    """Credentials and region for the stand-ins, also set for boto3 clients in the test process."""
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def iam_conn(moto_url, aws_env):
    """Module connection options for IAM/STS/ACM PCA on moto."""
    return dict(
        region="us-east-1",
        endpoint_url=moto_url,
        endpoint_urls={"iam": moto_url, "sts": moto_url, "acm-pca": moto_url},
        access_key=aws_env["AWS_ACCESS_KEY_ID"],
        secret_key=aws_env["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="session")
def boto(moto_url, aws_env):
    import boto3

    def client(service, endpoint_url=moto_url):
        return boto3.client(
            service,
            endpoint_url=endpoint_url,
            region_name=aws_env["AWS_DEFAULT_REGION"],
            aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
        )

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


@pytest.fixture(scope="session")
def ra_url(moto_url, aws_env):
    """ra_local on loopback, backed by the moto server."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ra_local", "--host", "127.0.0.1", "--port", str(port), "--aws-endpoint", moto_url],
        cwd=REPO, env=dict(os.environ, **aws_env), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "listening" in line, line
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def ra_conn(ra_url, iam_conn):
    """Module connection options: Roles Anywhere at ra_local, IAM/STS/ACM PCA at moto."""
    return dict(iam_conn, endpoint_url=ra_url)
