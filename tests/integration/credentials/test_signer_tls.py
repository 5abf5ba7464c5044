"""The signer's https: the system store's hashed directory is tried first (no bundle file parsed at every
start), the whole store when that directory does not vouch for the endpoint, and verification never loosens."""
import ssl
import subprocess

import pytest

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _sigv4x509 as sigv4
from tests.support.aws import provision


def hashed_directory(directory, *ca_files):
    """A certificate directory as OpenSSL looks certificates up: links named <subject hash>.0."""
    directory.mkdir()
    for ca_file in ca_files:
        subject_hash = subprocess.run(["openssl", "x509", "-noout", "-subject_hash", "-in", str(ca_file)],
                                      check=True, capture_output=True, text=True).stdout.strip()
        (directory / f"{subject_hash}.0").symlink_to(ca_file)
    return str(directory)


@pytest.fixture
def contexts_made(monkeypatch):
    """The keyword arguments of every ssl.create_default_context call, in order."""
    calls = []
    real = ssl.create_default_context

    def spy(**where):
        calls.append(where)
        return real(**where)

    monkeypatch.setattr(ssl, "create_default_context", spy)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    return calls


@pytest.fixture(scope="module")
def tls_arns(stand, ra_endpoint_tls):
    return {k: v for k, v in provision(ra_endpoint_tls, stand.ca.pem()).items() if k != "role_name"}


def create_session(stand, endpoint, arns, **kwargs):
    key = sigv4.load_private_key_file(str(stand.file_key_path))
    certificate = sigv4.load_certificate_file(str(stand.file_cert_path))
    return sigv4.create_session(key, certificate, endpoint=endpoint.url, **arns, **kwargs)


def test_the_hashed_system_directory_alone_verifies_the_endpoint(
        stand, ra_endpoint_tls, tls_arns, contexts_made, monkeypatch, tmp_path):
    directory = hashed_directory(tmp_path / "certs", ra_endpoint_tls.ca_file)
    monkeypatch.setenv("SSL_CERT_DIR", directory)
    assert create_session(stand, ra_endpoint_tls, tls_arns).access_key_id.startswith("ASIA")
    assert contexts_made == [{"capath": directory}]


def test_the_whole_store_is_tried_when_the_directory_does_not_vouch(
        stand, ra_endpoint_tls, tls_arns, contexts_made, monkeypatch, tmp_path):
    unrelated = hashed_directory(tmp_path / "unrelated", stand.file_cert_path)
    monkeypatch.setenv("SSL_CERT_DIR", hashed_directory(tmp_path / "certs", ra_endpoint_tls.ca_file))
    paths = ssl.get_default_verify_paths()
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: paths._replace(capath=unrelated))
    assert create_session(stand, ra_endpoint_tls, tls_arns).access_key_id.startswith("ASIA")
    assert contexts_made == [{"capath": unrelated}, {}]


def test_an_endpoint_no_store_vouches_for_is_refused(stand, ra_endpoint_tls, tls_arns, contexts_made, monkeypatch,
                                                     tmp_path):
    monkeypatch.setenv("SSL_CERT_DIR", hashed_directory(tmp_path / "certs", stand.file_cert_path))
    with pytest.raises(sigv4.TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        create_session(stand, ra_endpoint_tls, tls_arns)
    assert len(contexts_made) == 2
    assert create_session(stand, ra_endpoint_tls, tls_arns, ca_bundle=ra_endpoint_tls.ca_file).access_key_id
    assert contexts_made[2:] == [{"cafile": ra_endpoint_tls.ca_file}]


def test_a_certificate_for_another_name_is_refused(stand, ra_endpoint_tls, tls_arns):
    """The server certificate names 127.0.0.1 only: reached as localhost, the name check refuses it."""
    key = sigv4.load_private_key_file(str(stand.file_key_path))
    certificate = sigv4.load_certificate_file(str(stand.file_cert_path))
    with pytest.raises(sigv4.TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        sigv4.create_session(key, certificate, endpoint=f"https://localhost:{ra_endpoint_tls.port}",
                             ca_bundle=ra_endpoint_tls.ca_file, **tls_arns)
