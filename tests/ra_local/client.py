"""CreateSession requests signed by the independent PyPI signer (iam-rolesanywhere-session: ARNs in the body).

``SHA256Signer`` names the algorithm AWS4-X509-<RSA|ECDSA>-SHA256 whatever hash signed the certificate (the
library otherwise names it after the CA's hash), so certificate rules can be tested past the signature check.
"""
import json
import ssl
import urllib.error
import urllib.request

from botocore.auth import SIGV4_TIMESTAMP
from botocore.awsrequest import AWSRequest
from iam_rolesanywhere_session import IAMRolesAnywhereSigner

from tests.ra_local.pki import key_pem, pem


class SHA256Signer(IAMRolesAnywhereSigner):
    signed_at = None

    @property
    def algorithm(self):
        return f"AWS4-X509-{self.private_key_type}-SHA256"

    def add_auth(self, request):
        if self.signed_at is None:
            return super().add_auth(request)
        # the library stamps the current time; a fixed instant lets tests send stale or future requests
        request.context["timestamp"] = self.signed_at.strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical = self.canonical_request(request)
        self._inject_signature_to_request(request, self.signature(self.string_to_sign(request, canonical)))


def signed_request(endpoint, cert, key, arns, chain=(), duration=None, role_session_name=None,
                   signed_at=None, tamper=None, extra_body=None):
    """(url, headers, body bytes) of a CreateSession request signed for ``endpoint`` (an RaEndpoint).

    ``tamper(request)`` may alter the signed request before it is prepared."""
    signer = SHA256Signer(certificate=pem(cert).encode(), private_key=key_pem(key).encode(),
                          certificate_chain="".join(pem(c) for c in chain).encode() if chain else None,
                          region=endpoint.region)
    signer.signed_at = signed_at
    body = {"profileArn": arns["profile_arn"], "roleArn": arns["role_arn"], "trustAnchorArn": arns["trust_anchor_arn"]}
    if duration is not None:
        body["durationSeconds"] = duration
    if role_session_name is not None:
        body["roleSessionName"] = role_session_name
    body.update(extra_body or {})
    request = AWSRequest(method="POST", url=f"{endpoint.url}/sessions", data=json.dumps(body))
    signer.add_auth(request)
    if tamper:
        tamper(request)
    prepared = request.prepare()
    data = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    return prepared.url, dict(prepared.headers.items()), data


def create_session(endpoint, cert, key, arns, **options):
    """POST /sessions to ``endpoint``; returns (status, JSON body with ``errorType`` added on errors)."""
    url, headers, data = signed_request(endpoint, cert, key, arns, **options)
    http_request = urllib.request.Request(url, data=data, method="POST", headers=headers)
    context = ssl.create_default_context(cafile=endpoint.ca_file) if endpoint.ca_file else None
    try:
        with urllib.request.urlopen(http_request, timeout=30, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        document = json.loads(exc.read() or b"{}")
        document["errorType"] = exc.headers.get("X-Amzn-ErrorType")
        return exc.code, document
