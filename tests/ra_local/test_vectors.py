"""Known answers: requests captured from AWS's aws_signing_helper 1.2.1, replayed byte for byte.

Each capture is sent as its raw wire bytes (chunked body, no Content-Length, ARNs in the query) to an
endpoint whose clock is fixed at the capture's X-Amz-Date, with the capture's trust anchor and profile
IDs restored from a persisted state file. Untouched, it yields credentials for role ``test``; a one-byte
change to a signed header, the query or the body is refused as an invalid signature.
"""
import base64
import http.client
import json
import socket
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.support.aws import roles_anywhere_trust_policy, start_ra_local

VECTORS = Path("/work/shared/vectors/aws_signing_helper-1.2.1")
CASES = ["ec-softhsm", "rsa-softhsm", "ec-pemfile"]
TRUST_ANCHOR_ID = "11111111-2222-3333-4444-555555555555"
PROFILE_ID = "66666666-7777-8888-9999-000000000000"
ROLE_NAME = "test"


def load_case(case):
    request = json.loads((VECTORS / case / "request.json").read_text())
    headers = dict(request["headers"])
    return request, base64.b64decode(request["raw_wire_b64"]), headers["X-Amz-Date"]


def replay(endpoint, wire):
    """Send raw request bytes; return (status, error type header, JSON body)."""
    with socket.create_connection((endpoint.host, endpoint.port), timeout=20) as sock:
        sock.sendall(wire)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.getheader("X-Amzn-ErrorType"), json.loads(response.read())


@pytest.fixture(scope="module")
def vector_state(moto_server, tmp_path_factory):
    """A state file holding the captures' trust anchor (their CA) and profile (role ``test``) under the
    captured IDs: created through the API, then renamed in the persisted file."""
    workdir = tmp_path_factory.mktemp("vectors")
    state = workdir / "state.json"
    endpoint = start_ra_local(moto_server, workdir, state=state)
    try:
        client = endpoint.client()
        anchor = client.create_trust_anchor(
            name="vectors", enabled=True,
            source={"sourceType": "CERTIFICATE_BUNDLE", "sourceData": {"x509CertificateData": (VECTORS / "ca.pem").read_text()}},
        )["trustAnchor"]
        role_arn = f"arn:aws:iam::{moto_server.account}:role/{ROLE_NAME}"
        profile = client.create_profile(name="vectors", roleArns=[role_arn], enabled=True)["profile"]
    finally:
        endpoint.stop()
    text = state.read_text().replace(anchor["trustAnchorId"], TRUST_ANCHOR_ID).replace(profile["profileId"], PROFILE_ID)
    state.write_text(text)

    # the captures' subject is OU=Innovation: the trust policy checks that tag and the trust anchor
    anchor_arn = anchor["trustAnchorArn"].replace(anchor["trustAnchorId"], TRUST_ANCHOR_ID)
    policy = json.dumps(roles_anywhere_trust_policy(anchor_arn, {"StringEquals": {"aws:PrincipalTag/x509Subject/OU": "Innovation"}}))
    iam = moto_server.client("iam")
    try:
        iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=policy)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "EntityAlreadyExists"
        iam.update_assume_role_policy(RoleName=ROLE_NAME, PolicyDocument=policy)
    return workdir, state


@pytest.fixture(scope="module", params=CASES)
def case_endpoint(request, moto_server, vector_state):
    workdir, state = vector_state
    capture, wire, amz_date = load_case(request.param)
    endpoint = start_ra_local(moto_server, workdir, state=state, fixed_time=amz_date)
    yield request.param, wire, endpoint
    endpoint.stop()


def test_capture_yields_credentials_for_the_role(case_endpoint, moto_server):
    case, wire, endpoint = case_endpoint
    status, error_type, document = replay(endpoint, wire)
    assert status == 201, (error_type, document)
    (entry,) = document["credentialSet"]
    serial_hex = format(int({"ec-softhsm": 8193, "rsa-softhsm": 8194, "ec-pemfile": 8195}[case]), "x")
    assert entry["assumedRoleUser"]["arn"] == f"arn:aws:sts::{moto_server.account}:assumed-role/{ROLE_NAME}/{serial_hex}"
    assert entry["sourceIdentity"].startswith("ra-test-client")
    assert document["subjectArn"].startswith(f"arn:aws:rolesanywhere:{endpoint.region}:{endpoint.account}:subject/")
    credentials = entry["credentials"]
    sts = moto_server.client("sts", keys={"aws_access_key_id": credentials["accessKeyId"],
                                          "aws_secret_access_key": credentials["secretAccessKey"],
                                          "aws_session_token": credentials["sessionToken"]})
    assert sts.get_caller_identity()["Arn"] == entry["assumedRoleUser"]["arn"]


ONE_BYTE_CHANGES = {
    "signed header content-type": (b"Content-Type: application/json", b"Content-Type: application/jsoo"),
    "signed header host": (b"Host: 127.0.0.1:", b"Host: 127.0.0.2:"),
    "query": (b"role%2Ftest&", b"role%2Ftesu&"),
    "body": (b'{"durationSeconds":3600}', b'{"durationSeconds":3601}'),
}


@pytest.mark.parametrize("change", ONE_BYTE_CHANGES)
def test_one_byte_change_is_an_invalid_signature(case_endpoint, change):
    _, wire, endpoint = case_endpoint
    original, altered = ONE_BYTE_CHANGES[change]
    assert wire.count(original) == 1 and len(original) == len(altered)
    status, error_type, document = replay(endpoint, wire.replace(original, altered))
    assert (status, error_type) == (403, "AccessDeniedException")
    assert document["message"].startswith("Invalid signature: the signature does not verify")


def test_capture_outside_the_clock_skew_is_refused(moto_server, vector_state):
    workdir, state = vector_state
    _, wire, amz_date = load_case("ec-pemfile")
    signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    later = (signed_at + timedelta(seconds=301)).strftime("%Y%m%dT%H%M%SZ")  # just past the default ±300 s
    endpoint = start_ra_local(moto_server, workdir, state=state, fixed_time=later)
    try:
        status, error_type, document = replay(endpoint, wire)
    finally:
        endpoint.stop()
    assert (status, error_type) == (403, "AccessDeniedException")
    assert document["message"].startswith(f"Signature expired: X-Amz-Date {amz_date}")


def test_canonical_request_matches_the_protocol_notes_known_answer():
    """§4.6: sha256 of the ec-softhsm body and of its canonical request, computed by ra_local's own code."""
    import hashlib

    from ra_local.signature import canonical_request

    request, _, _ = load_case("ec-softhsm")
    body = request["body_text"].encode()
    assert hashlib.sha256(body).hexdigest() == "1a15f67f6619aa540b13e9a4c37d149fb2c9bdea25d82b73a3878826694dfe27"
    canonical = canonical_request("POST", request["path"], request["raw_query"], request["headers"],
                                  "content-type;host;x-amz-date;x-amz-x509", body)
    assert hashlib.sha256(canonical.encode()).hexdigest() == "cc6261acbf70e71f913c1d68caa1e98191dd24c7e506690617d340a4c7af35e6"
