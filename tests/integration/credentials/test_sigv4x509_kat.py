"""Known-answer tests: the signer reproduces aws_signing_helper 1.2.1's captured CreateSession requests."""
import base64
import datetime
import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _sigv4x509 as sigv4

VECTORS = Path("/work/shared/vectors/aws_signing_helper-1.2.1")
CASES = ["ec-softhsm", "rsa-softhsm", "ec-pemfile"]
TRUST_ANCHOR = "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/11111111-2222-3333-4444-555555555555"
PROFILE = "arn:aws:rolesanywhere:us-east-1:123456789012:profile/66666666-7777-8888-9999-000000000000"
ROLE = "arn:aws:iam::123456789012:role/test"

pytestmark = pytest.mark.skipif(not VECTORS.is_dir(), reason="captured vectors not present")


def load_case(name):
    request = json.loads((VECTORS / name / "request.json").read_text())
    headers = dict(request["headers"])
    certificate = x509.load_pem_x509_certificate((VECTORS / name / "client.pem").read_bytes())
    date = datetime.datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    return request, headers, certificate, date


def captured_signature(headers):
    return bytes.fromhex(headers["Authorization"].rsplit("Signature=", 1)[1])


def verify(certificate, signature, text):
    public_key = certificate.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, text.encode(), ec.ECDSA(hashes.SHA256()))
    else:
        public_key.verify(signature, text.encode(), padding.PKCS1v15(), hashes.SHA256())


def prepare(certificate, headers, date, body):
    return sigv4.prepare_request(
        certificate,
        algorithm=sigv4.algorithm_for_certificate(certificate),
        host=headers["Host"],
        region="us-east-1",
        trust_anchor_arn=TRUST_ANCHOR,
        profile_arn=PROFILE,
        role_arn=ROLE,
        body=body,
        now=date,
    )


@pytest.mark.parametrize("case", CASES)
def test_request_shape_matches_capture(case):
    request, headers, certificate, date = load_case(case)
    prepared = prepare(certificate, headers, date, sigv4.request_body())
    assert prepared.body == base64.b64decode(request["body_b64"])
    assert prepared.query == request["raw_query"]
    for name in ("Content-Type", "Host", "X-Amz-Date", "X-Amz-X509"):
        assert prepared.headers[name] == headers[name]
    authorization = headers["Authorization"]
    prefix = authorization.rsplit("Signature=", 1)[0]
    assert prefix == (
        f"{prepared.algorithm} Credential={prepared.serial}/{prepared.scope}, "
        f"SignedHeaders={prepared.signed_headers}, "
    )


@pytest.mark.parametrize("case", CASES)
def test_captured_signature_verifies_over_our_string_to_sign(case):
    """The Go helper signed its string to sign; it verifies over ours only if they are byte-identical."""
    _, headers, certificate, date = load_case(case)
    prepared = prepare(certificate, headers, date, sigv4.request_body())
    verify(certificate, captured_signature(headers), prepared.string_to_sign)
    with pytest.raises(InvalidSignature):
        verify(certificate, captured_signature(headers), prepared.string_to_sign.replace("us-east-1", "us-east-2"))


def test_ec_softhsm_known_hashes_from_protocol_notes():
    _, headers, certificate, date = load_case("ec-softhsm")
    prepared = prepare(certificate, headers, date, sigv4.request_body(3600))
    assert hashlib.sha256(prepared.body).hexdigest() == "1a15f67f6619aa540b13e9a4c37d149fb2c9bdea25d82b73a3878826694dfe27"
    assert (
        hashlib.sha256(prepared.canonical_request.encode()).hexdigest()
        == "cc6261acbf70e71f913c1d68caa1e98191dd24c7e506690617d340a4c7af35e6"
    )
    lines = prepared.canonical_request.split("\n")
    assert lines[:2] == ["POST", "/sessions"]
    assert lines[-2] == "content-type;host;x-amz-date;x-amz-x509"
    assert prepared.string_to_sign.split("\n")[:3] == [
        "AWS4-X509-ECDSA-SHA256",
        "20261127T210540Z",
        "20261127/us-east-1/rolesanywhere/aws4_request",
    ]


def test_ec_pemfile_full_signature_with_file_key():
    _, headers, certificate, date = load_case("ec-pemfile")
    key = sigv4.load_private_key_file(str(VECTORS / "ec-pemfile" / "client.key"))
    sigv4.check_key_matches(key, certificate)
    signed = sigv4.sign_request(
        key,
        certificate,
        host=headers["Host"],
        region="us-east-1",
        trust_anchor_arn=TRUST_ANCHOR,
        profile_arn=PROFILE,
        role_arn=ROLE,
        body=sigv4.request_body(),
        now=date,
    )
    ours, theirs = signed.headers["Authorization"], headers["Authorization"]
    assert ours.rsplit("Signature=", 1)[0] == theirs.rsplit("Signature=", 1)[0]
    signature = bytes.fromhex(ours.rsplit("Signature=", 1)[1])
    assert signature[0] == 0x30  # DER SEQUENCE, not raw r||s
    verify(certificate, signature, signed.string_to_sign)
    # The same key signed the capture: both signatures verify over the same string.
    verify(certificate, captured_signature(headers), signed.string_to_sign)


def test_rsa_file_key_signs_pkcs1v15(tmp_path):
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert sigv4.algorithm_for(key) == sigv4.ALGORITHM_RSA
    signature = bytes.fromhex(sigv4.sign_string(key, "text"))
    key.public_key().verify(signature, b"text", padding.PKCS1v15(), hashes.SHA256())


def test_chain_header_is_signed_and_comma_joined():
    _, headers, certificate, date = load_case("ec-pemfile")
    ca = x509.load_pem_x509_certificate((VECTORS / "ca.pem").read_bytes())
    prepared = sigv4.prepare_request(
        certificate,
        algorithm=sigv4.ALGORITHM_EC,
        host="h",
        region="us-east-1",
        trust_anchor_arn=TRUST_ANCHOR,
        profile_arn=PROFILE,
        role_arn=ROLE,
        body=b"{}",
        chain=[ca, certificate],
        now=date,
    )
    assert prepared.signed_headers == "content-type;host;x-amz-date;x-amz-x509;x-amz-x509-chain"
    parts = prepared.headers["X-Amz-X509-Chain"].split(",")
    assert [x509.load_der_x509_certificate(base64.b64decode(p)) for p in parts] == [ca, certificate]


def test_role_session_name_body_and_region_rules():
    assert sigv4.request_body(900, "web-1") == b'{"durationSeconds":900,"roleSessionName":"web-1"}'
    assert sigv4.signing_region(TRUST_ANCHOR, PROFILE) == "us-east-1"
    with pytest.raises(sigv4.ConfigurationError, match="regions don't match"):
        sigv4.signing_region(TRUST_ANCHOR, PROFILE.replace("us-east-1", "eu-west-1"))
    with pytest.raises(sigv4.ConfigurationError, match="is not an ARN"):
        sigv4.signing_region("trust-anchor/1", PROFILE)
