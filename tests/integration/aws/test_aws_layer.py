"""The AWS client layer (_aws.py): retries against a real loopback server that throttles, one error type,
and the pure helpers (tags, policy comparison, durations)."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _aws
from tests.support.ansible import run_module


class ScriptedRolesAnywhere(ThreadingHTTPServer):
    """Answers every request with the next scripted (status, error type or None, body) and counts requests."""

    def __init__(self, script):
        super().__init__(("127.0.0.1", 0), ScriptedHandler)
        self.script = list(script)
        self.requests = 0


class ScriptedHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests += 1
        status, error_type, body = self.server.script.pop(0)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    servers = []

    def start(script):
        server = ScriptedRolesAnywhere(script)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        params = dict(region="us-east-1", access_key="AKIDEXAMPLE", secret_key="secret", validate_certs=True,
                      endpoint_url=f"http://127.0.0.1:{server.server_address[1]}", _primary_service="rolesanywhere")
        return server, _aws.client_factory(params, "rolesanywhere")

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_throttling_and_5xx_are_retried(scripted):
    server, client = scripted([
        (429, "ThrottlingException", {"message": "Rate exceeded"}),
        (503, "ServiceUnavailableException", {"message": "try later"}),
        (200, None, {"trustAnchors": [{"name": "a"}]}),
    ])
    assert client.list_trust_anchors()["trustAnchors"] == [{"name": "a"}]
    assert server.requests == 3


def test_paginated_listing_restarts_after_a_throttled_page(scripted):
    server, client = scripted([
        (200, None, {"profiles": [{"name": "p1"}], "nextToken": "t1"}),
        (429, "ThrottlingException", {"message": "Rate exceeded"}),
        (200, None, {"profiles": [{"name": "p1"}], "nextToken": "t1"}),
        (200, None, {"profiles": [{"name": "p2"}]}),
    ])
    assert client.paginate("list_profiles", "profiles") == [{"name": "p1"}, {"name": "p2"}]
    assert server.requests == 4


def test_other_errors_fail_once_with_code_and_message(scripted):
    server, client = scripted([(403, "AccessDeniedException", {"message": "not allowed"})])
    with pytest.raises(_aws.AWSError) as failure:
        client.list_trust_anchors()
    assert server.requests == 1
    assert failure.value.code == "AccessDeniedException" and failure.value.status == 403
    assert str(failure.value) == "ListTrustAnchors failed: AccessDeniedException: not allowed"


def test_connection_problem_is_a_clear_module_failure():
    result = run_module("rolesanywhere_trust_anchor", {"name": "x", "state": "absent", "profile": "no-such-profile",
                                                       "region": "us-east-1"})
    assert result.failed and "no-such-profile" in result["msg"] and "Traceback" not in result["stderr"], result
    assert result["error"]["code"] == "ProfileNotFound"


def test_compare_tags():
    current = {"a": "1", "b": "2", "aws:cloudformation:stack": "s"}
    assert _aws.compare_tags(current, {"a": "1", "b": 3, "c": "x"}) == ({"b": "3", "c": "x"}, [])
    assert _aws.compare_tags(current, {"a": "1"}) == ({}, ["b"])  # aws: tags are never removed
    assert _aws.compare_tags(current, {"a": "1"}, purge=False) == ({}, [])
    assert _aws.desired_tags(current, None, True) == current


def test_policies_compare_by_meaning_not_spelling():
    a = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": ["s3:*"], "NotResource": ["b", "a"]}]}
    b = {"Statement": {"NotResource": ["a", "b"], "Action": "s3:*", "Effect": "Deny"}, "Version": "2012-10-17"}
    assert _aws.canonical_policy(a) == _aws.canonical_policy(b)
    assert _aws.canonical_policy(a) != _aws.canonical_policy(dict(a, Statement=[dict(a["Statement"][0], Effect="Allow")]))


@pytest.mark.parametrize("text, expected", [
    ("{", "not valid JSON"),
    ("[]", "must be a JSON object with a Statement"),
    ('{"Statement": [{"Effect": "Deny"}]}', "needs Action or NotAction"),
])
def test_malformed_policies_are_named(text, expected):
    with pytest.raises(_aws.AWSError, match=expected):
        _aws.load_policy(text, "session_policy")


def test_duration_bounds():
    _aws.check_duration(900)
    _aws.check_duration(43200)
    for bad in (899, 43201):
        with pytest.raises(_aws.AWSError, match="900..43200"):
            _aws.check_duration(bad)


def test_credentials_never_appear_in_results(ra_conn, moto_server):
    secret, token = moto_server.admin.secret_access_key, "session-token-value-7c1e"
    args = dict(ra_conn, name="no-log-probe", state="absent", session_token=token)
    result = run_module("rolesanywhere_trust_anchor", args)
    assert not result.failed, result  # the endpoint accepts the call; the token is only signed into it
    for value in (secret, token, moto_server.admin.access_key_id):
        assert value not in result["raw_stdout"]
    assert result["invocation"]["module_args"]["secret_key"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
