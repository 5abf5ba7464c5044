# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one IAM Roles Anywhere CreateSession signer and client (SigV4-X509).

Pure Python (stdlib + cryptography, no Ansible): used by the ``rolesanywhere_session`` module, by the
bundled credential helper installed on hosts, and by the tests. The helper starts once per credential
refresh, so nothing heavy is imported up front: certificates are read with _der, HTTP is a few lines over
a socket (the ``socket`` module and ``ssl`` only for https), JSON goes through CPython's ``_json``
accelerator (``json``, ``re`` and ``urllib.parse`` would import ``enum`` and more), and cryptography is
imported only to use a file key (token keys from _token_signer sign alone). It sends the request the way AWS's
``aws_signing_helper`` does: ARNs in the query, body ``{"durationSeconds":N}``, Content-Type
``application/json``, signed headers ``content-type;host;x-amz-date;x-amz-x509[;x-amz-x509-chain]``.
The signature is one SHA-256 signature over the string to sign with the certificate's key (ECDSA as DER,
or RSA PKCS#1 v1.5), hex encoded; ``Credential=`` carries the certificate serial in decimal.

Any cryptography private key object signs, including token-backed keys whose ``sign()`` runs on a
PKCS#11 token, and so does any object with ``sigv4_sign(data)`` and ``public_key_material()``
(_token_signer.TokenKey). Certificates are cryptography certificates or _der.Certificate objects.
``get_caller_identity`` proves the credentials with sts:GetCallerIdentity (plain SigV4), so
hosts need no boto3.
"""
from __future__ import annotations

import binascii
import datetime
import os

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _der

SERVICE = "rolesanywhere"
CANONICAL_URI = "/sessions"
CONTENT_TYPE = "application/json"
ALGORITHM_EC = "AWS4-X509-ECDSA-SHA256"
ALGORITHM_RSA = "AWS4-X509-RSA-SHA256"
DEFAULT_DURATION = 3600
DEFAULT_TIMEOUT = 30
USER_AGENT = "rolesanywhere.fleet-signer/0.1.0"
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_JSON_SPACE = " \t\n\r"

try:
    from _json import encode_basestring_ascii as _json_string, make_scanner as _make_json_scanner
except ImportError:  # not CPython: the json module's pure-Python fallbacks
    from json.decoder import JSONDecoder as _JsonContext
    from json.encoder import py_encode_basestring_ascii as _json_string
    from json.scanner import py_make_scanner as _make_json_scanner
else:
    class _JsonContext:
        """The settings _json's scanner reads from a json.JSONDecoder: plain json.loads semantics."""

        strict = True
        object_hook = object_pairs_hook = None
        parse_float = parse_constant = float
        parse_int = int


class RolesAnywhereError(Exception):
    """Base of every error raised here; ``str()`` is one line that is safe to show (never a secret)."""


class ConfigurationError(RolesAnywhereError):
    """Bad local input: ARNs, certificate or key files, a key that does not match its certificate."""


class TransportError(RolesAnywhereError):
    """The endpoint could not be reached or the connection failed (no HTTP response)."""


class ServiceError(RolesAnywhereError):
    """The endpoint answered with an error status.

    ``status`` (HTTP code), ``error_type`` (e.g. ``AccessDeniedException``), ``message`` and ``request_id``
    come from the response; ``str()`` follows the Go helper's wording.
    """

    def __init__(self, status, error_type, message, request_id="", operation="RolesAnywhere: CreateSession"):
        self.status = status
        self.error_type = error_type
        self.message = message
        self.request_id = request_id
        super().__init__(
            f"operation error {operation}, https response error StatusCode: {status}, "
            f"RequestID: {request_id}, {error_type}: {message}"
        )


class ResponseError(RolesAnywhereError):
    """The endpoint answered success but the body is not a usable CreateSession response."""


def json_object(fields: dict) -> str:
    """``json.dumps(fields, separators=(",", ":"))`` for str and int values, without importing json."""
    return "{" + ",".join(f"{_json_string(name)}:{_json_string(value) if isinstance(value, str) else int(value)}"
                          for name, value in fields.items()) + "}"


def json_loads(data):
    """``json.loads`` for a str or UTF-8 bytes document, without importing json; raises ValueError."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    try:
        value, end = _make_json_scanner(_JsonContext())(text, start)
    except StopIteration:
        raise ValueError("not a JSON document") from None
    if text[end:].strip(_JSON_SPACE):
        raise ValueError("extra data after the JSON document")
    return value


class Arn:
    """The parts of an ARN (a class, not a namedtuple: collections costs the helper's cold start)."""

    def __init__(self, partition, service, region, account, resource):
        self.partition = partition
        self.service = service
        self.region = region
        self.account = account
        self.resource = resource


def parse_arn(value: str, what: str) -> Arn:
    parts = (value or "").split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not all(parts[1:3]) or not parts[5] or "\n" in value:
        raise ConfigurationError(f"{what} {value!r} is not an ARN (expected arn:aws:rolesanywhere:REGION:ACCOUNT:...)")
    return Arn(*parts[1:])


class Url:
    """What the client needs of an endpoint URL, split as urllib.parse.urlsplit does (without importing it)."""

    def __init__(self, text: str):
        scheme, separator, rest = text.partition("://")
        self.scheme = scheme.lower() if separator else ""
        rest = rest if separator else ""
        cut = min((rest.find(mark) for mark in "/?#" if mark in rest), default=len(rest))
        self.netloc, self.path = rest[:cut], rest[cut:].split("?", 1)[0].split("#", 1)[0]
        hostinfo = self.netloc.rpartition("@")[2]
        if hostinfo.startswith("["):
            host, bracket, port = hostinfo[1:].partition("]")
            if not bracket or (port and not port.startswith(":")):
                raise ConfigurationError(f"endpoint {text!r} has a malformed [IPv6] host: use e.g. https://[::1]:8443")
            port = port[1:]
        else:
            host, _sep, port = hostinfo.partition(":")
        self.hostname = host.lower() or None
        self._port = port or None

    @property
    def port(self):
        """The port as an int, or None; ValueError for a bad one (as urlsplit's ``port``)."""
        if self._port is None:
            return None
        if not (self._port.isdigit() and self._port.isascii()) or int(self._port) > 65535:
            raise ValueError(f"port {self._port!r} is not a number from 0 to 65535")
        return int(self._port)


def signing_region(trust_anchor_arn: str, profile_arn: str, region: str | None = None) -> str:
    """The Go helper's rule: the region defaults to the trust anchor's, and the profile must share it."""
    anchor = parse_arn(trust_anchor_arn, "trust anchor ARN")
    profile = parse_arn(profile_arn, "profile ARN")
    if anchor.region != profile.region:
        raise ConfigurationError(
            f"trust anchor and profile regions don't match ({anchor.region} != {profile.region}): "
            "use a profile from the trust anchor's region"
        )
    return region or anchor.region


def default_endpoint(region: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{SERVICE}.{region}.{suffix}"


# ---------------------------------------------------------------- canonical request and string to sign

def amz_date(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _uri_encode(value: str) -> str:
    # RFC 3986: only A-Z a-z 0-9 - _ . ~ stay unescaped, uppercase %XX.
    return "".join(chr(byte) if byte in _UNRESERVED else f"%{byte:02X}" for byte in value.encode("utf-8"))


def canonical_query(params: dict) -> str:
    """Parameters sorted by encoded key, keys and values RFC 3986 encoded, joined with ``&``."""
    pairs = sorted((_uri_encode(k), _uri_encode(v)) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def _canonical_header_value(value: str) -> str:
    return " ".join(value.strip().split())


def canonical_request(method: str, query: str, headers: dict, body: bytes, uri: str = CANONICAL_URI):
    """Return ``(canonical_request, signed_headers)``; every header in ``headers`` is signed."""
    lowered = {name.lower(): _canonical_header_value(value) for name, value in headers.items()}
    names = sorted(lowered)
    signed_headers = ";".join(names)
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in names)
    payload_hash = _der.sha256(body).hexdigest()
    text = "\n".join([method, uri, query, canonical_headers, signed_headers, payload_hash])
    return text, signed_headers


def credential_scope(date: str, region: str, service: str = SERVICE) -> str:
    return f"{date[:8]}/{region}/{service}/aws4_request"


def string_to_sign(algorithm: str, date: str, region: str, canonical: str, service: str = SERVICE) -> str:
    digest = _der.sha256(canonical.encode("utf-8")).hexdigest()
    return "\n".join([algorithm, date, credential_scope(date, region, service), digest])


_ALGORITHMS = {"ec": ALGORITHM_EC, "rsa": ALGORITHM_RSA}


def key_material(key):
    """A private key's public half as _der compares it: ``("ec", curve, point)`` or ``("rsa", n, e)``."""
    if hasattr(key, "public_key_material"):
        return key.public_key_material()
    # cryptography's EC and RSA public numbers, told apart without importing both modules (the RSA one costs).
    public = key.public_key() if hasattr(key, "public_key") else None
    numbers = public.public_numbers() if hasattr(public, "public_numbers") else None
    if hasattr(numbers, "curve") and hasattr(numbers, "x"):
        size = (numbers.curve.key_size + 7) // 8
        return ("ec", numbers.curve.name, b"\x04" + numbers.x.to_bytes(size, "big") + numbers.y.to_bytes(size, "big"))
    if hasattr(numbers, "n") and hasattr(numbers, "e"):
        return ("rsa", numbers.n, numbers.e)
    raise ConfigurationError(f"unsupported private key type {type(key).__name__}: use an EC or RSA key")


def algorithm_for(key) -> str:
    return _ALGORITHMS[key_material(key)[0]]


def sign_string(key, text: str) -> str:
    """One SHA-256 signature over the string to sign (ECDSA DER or RSA PKCS#1 v1.5), lowercase hex."""
    data = text.encode("utf-8")
    if hasattr(key, "sigv4_sign"):
        return key.sigv4_sign(data).hex()
    from cryptography.hazmat.primitives import hashes

    if algorithm_for(key) == ALGORITHM_EC:
        from cryptography.hazmat.primitives.asymmetric import ec

        class Sha256Ecdsa(ec.ECDSA):
            """ECDSA with SHA-256 and random nonces, made without ECDSA.__init__: it imports cryptography's whole
            OpenSSL backend (RSA, ciphers, random: ~7 ms of a file key's cold start) only to vet RFC 6979 support."""

            algorithm = property(lambda self: hashes.SHA256())
            deterministic_signing = property(lambda self: False)

        return key.sign(data, object.__new__(Sha256Ecdsa)).hex()
    from cryptography.hazmat.primitives.asymmetric import padding

    return key.sign(data, padding.PKCS1v15(), hashes.SHA256()).hex()


def authorization_header(algorithm: str, serial: int, scope: str, signed_headers: str, signature: str) -> str:
    return f"{algorithm} Credential={serial}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"


def as_certificate(cert) -> _der.Certificate:
    """A _der.Certificate for either kind of certificate object."""
    if isinstance(cert, _der.Certificate):
        return cert
    from cryptography.hazmat.primitives.serialization import Encoding

    return _der.Certificate(cert.public_bytes(Encoding.DER))


def certificate_subject(cert) -> str:
    """The RFC 4514 subject; the one certificate field read with cryptography (the helper needs it only in --debug)."""
    from cryptography import x509

    return x509.load_der_x509_certificate(as_certificate(cert).der).subject.rfc4514_string()


def _b64_der(cert) -> str:
    return binascii.b2a_base64(as_certificate(cert).der, newline=False).decode("ascii")


def request_body(duration_seconds: int = DEFAULT_DURATION, role_session_name: str | None = None) -> bytes:
    body = {"durationSeconds": int(duration_seconds)}
    if role_session_name:
        body["roleSessionName"] = role_session_name
    return json_object(body).encode("utf-8")


class SignedRequest:
    """Everything needed to send one CreateSession request, plus what was signed (for tests and debugging)."""

    def __init__(self, query, headers, body, canonical_request, string_to_sign, *, algorithm, scope,
                 signed_headers, serial):
        self.query = query
        self.headers = headers
        self.body = body
        self.canonical_request = canonical_request
        self.string_to_sign = string_to_sign
        self.algorithm = algorithm
        self.scope = scope
        self.signed_headers = signed_headers
        self.serial = serial


def session_query(trust_anchor_arn: str, profile_arn: str, role_arn: str) -> str:
    return canonical_query({"profileArn": profile_arn, "roleArn": role_arn, "trustAnchorArn": trust_anchor_arn})


def algorithm_for_certificate(certificate) -> str:
    kind = as_certificate(certificate).public_key_material[0]
    if kind not in _ALGORITHMS:
        raise ConfigurationError(f"unsupported certificate key type {kind}: use an EC or RSA key")
    return _ALGORITHMS[kind]


def prepare_request(
    certificate,
    *,
    algorithm: str,
    host: str,
    region: str,
    trust_anchor_arn: str,
    profile_arn: str,
    role_arn: str,
    body: bytes,
    chain: list | tuple = (),
    now: datetime.datetime | None = None,
) -> SignedRequest:
    """Everything up to the signature: headers, canonical request and string to sign (no key needed)."""
    date = amz_date(now or datetime.datetime.now(datetime.timezone.utc))
    headers = {
        "Content-Type": CONTENT_TYPE,
        "Host": host,
        "X-Amz-Date": date,
        "X-Amz-X509": _b64_der(certificate),
    }
    if chain:
        headers["X-Amz-X509-Chain"] = ",".join(_b64_der(c) for c in chain)
    query = session_query(trust_anchor_arn, profile_arn, role_arn)
    canonical, signed_headers = canonical_request("POST", query, headers, body)
    return SignedRequest(
        query,
        headers,
        body,
        canonical,
        string_to_sign(algorithm, date, region, canonical),
        algorithm=algorithm,
        scope=credential_scope(date, region),
        signed_headers=signed_headers,
        serial=as_certificate(certificate).serial_number,
    )


def sign_request(key, certificate, **request) -> SignedRequest:
    """Sign a CreateSession request the way aws_signing_helper does; ``host`` includes ``:port`` if any.

    ``request`` takes prepare_request's keyword arguments except ``algorithm`` (it follows the key).
    """
    prepared = prepare_request(certificate, algorithm=algorithm_for(key), **request)
    signature = sign_string(key, prepared.string_to_sign)
    prepared.headers["Authorization"] = authorization_header(
        prepared.algorithm, prepared.serial, prepared.scope, prepared.signed_headers, signature
    )
    return prepared


# ---------------------------------------------------------------- certificates and file keys

def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} {path}: {exc.strerror}") from None


def load_certificate_file(path: str) -> _der.Certificate:
    """The first CERTIFICATE block of a PEM file (or a DER file)."""
    data = _read(path, "certificate")
    try:
        if b"-----BEGIN" in data:
            return next(_der.Certificate(der) for label, der in _der.pem_blocks(data) if label == "CERTIFICATE")
        return _der.Certificate(data)
    except (ValueError, StopIteration):
        raise ConfigurationError(f"{path} holds no X.509 certificate: pass a PEM certificate file") from None


def load_chain_file(path: str) -> list:
    """An intermediates bundle: every PEM block must be a CERTIFICATE."""
    data = _read(path, "intermediates bundle")
    try:
        blocks = _der.pem_blocks(data)
    except ValueError:
        blocks = []
    if not blocks or any(label != "CERTIFICATE" for label, _der_bytes in blocks):
        raise ConfigurationError(f"invalid certificate chain in {path}: every PEM block must be a CERTIFICATE")
    try:
        return [_der.Certificate(der) for _label, der in blocks]
    except ValueError:
        raise ConfigurationError(f"invalid certificate chain in {path}: a certificate does not parse") from None


def _private_key_from_numbers(data: bytes):
    """An unencrypted EC/RSA PEM key built from its numbers (cryptography's serialization costs the helper's
    cold start more than the signature); None when the file needs cryptography's own loader."""
    try:
        blocks = _der.pem_blocks(data)
    except ValueError:
        return None
    numbers = _der.private_key_numbers(*blocks[0]) if len(blocks) == 1 else None
    if numbers is None:
        return None
    try:
        if numbers[0] == "ec":
            from cryptography.hazmat.primitives.asymmetric import ec

            curve = {"secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1, "secp521r1": ec.SECP521R1}[numbers[1]]
            return ec.derive_private_key(numbers[2], curve())
        from cryptography.hazmat.primitives.asymmetric import rsa

        n, e, d, p, q, dmp1, dmq1, iqmp = numbers[1]
        return rsa.RSAPrivateNumbers(p, q, d, dmp1, dmq1, iqmp, rsa.RSAPublicNumbers(e, n)).private_key()
    except ValueError:
        return None


def load_private_key_file(path: str, password: str | None = None):
    data = _read(path, "private key")
    if b"Proc-Type: 4,ENCRYPTED" in data:
        raise ConfigurationError(f"{path} uses legacy OpenSSL PEM encryption: convert it to PKCS#8")
    key = None if password else _private_key_from_numbers(data)
    if key is not None:
        return key
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(data, password.encode() if password else None)
    except TypeError:
        raise ConfigurationError(f"{path} is encrypted: pass its PKCS#8 password") from None
    except ValueError:
        raise ConfigurationError(f"cannot load private key {path}: not a PEM key, or a wrong password") from None
    algorithm_for(key)
    return key


def check_key_matches(key, certificate) -> None:
    if key_material(key) != as_certificate(certificate).public_key_material:
        raise ConfigurationError(
            "the private key does not match the certificate: pass the key the certificate was issued for"
        )


def check_validity(certificate, now: datetime.datetime | None = None) -> None:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    certificate = as_certificate(certificate)
    if certificate.not_valid_after_utc < now:
        raise ConfigurationError(
            f"certificate serial {certificate.serial_number} expired at "
            f"{certificate.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}: renew it"
        )
    if certificate.not_valid_before_utc > now:
        raise ConfigurationError(
            f"certificate serial {certificate.serial_number} is not valid before "
            f"{certificate.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}: check the host clock"
        )


# ---------------------------------------------------------------- the client

class Session:
    """A parsed CreateSession response (``credentialSet[0]``); ``expiration`` is verbatim from the service."""

    def __init__(self, access_key_id, secret_access_key, session_token, expiration, assumed_role_arn="",
                 assumed_role_id="", role_arn="", source_identity="", subject_arn=""):
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token
        self.expiration = expiration
        self.assumed_role_arn = assumed_role_arn
        self.assumed_role_id = assumed_role_id
        self.role_arn = role_arn
        self.source_identity = source_identity
        self.subject_arn = subject_arn

    def __repr__(self):  # never the secrets
        return f"Session(access_key_id={self.access_key_id!r}, expiration={self.expiration!r})"

    def expiration_datetime(self) -> datetime.datetime:
        return parse_timestamp(self.expiration)

    def credential_process_json(self) -> str:
        """The SDK ``credential_process`` document, byte for byte as aws_signing_helper prints it."""
        return json_object(
            {
                "Version": 1,
                "AccessKeyId": self.access_key_id,
                "SecretAccessKey": self.secret_access_key,
                "SessionToken": self.session_token,
                "Expiration": self.expiration,
            }
        )


def parse_timestamp(value: str) -> datetime.datetime:
    parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def parse_session_response(body: bytes) -> Session:
    try:
        document = json_loads(body)
        entry = document["credentialSet"][0]
        creds = entry["credentials"]
        fields = {name: creds[name] for name in ("accessKeyId", "secretAccessKey", "sessionToken", "expiration")}
    except (ValueError, KeyError, IndexError, TypeError):
        raise ResponseError(
            "unable to obtain temporary security credentials from CreateSession: the response has no credentials"
        ) from None
    if not all(isinstance(v, str) and v for v in fields.values()):
        raise ResponseError("unable to obtain temporary security credentials from CreateSession: empty credentials")
    try:
        parse_timestamp(fields["expiration"])
    except ValueError:
        raise ResponseError(f"CreateSession returned an unreadable expiration {fields['expiration']!r}") from None
    role_user = entry.get("assumedRoleUser") or {}
    return Session(
        access_key_id=fields["accessKeyId"],
        secret_access_key=fields["secretAccessKey"],
        session_token=fields["sessionToken"],
        expiration=fields["expiration"],
        assumed_role_arn=role_user.get("arn", ""),
        assumed_role_id=role_user.get("assumedRoleId", ""),
        role_arn=entry.get("roleArn", ""),
        source_identity=entry.get("sourceIdentity", ""),
        subject_arn=document.get("subjectArn", ""),
    )


def _error_from_response(status: int, headers: dict, body: bytes) -> ServiceError:
    """The service's error; ``headers`` have lowercased names (as _post returns them)."""
    try:
        document = json_loads(body or b"{}")
        if not isinstance(document, dict):
            document = {}
    except ValueError:
        document = {}
    error_type = headers.get("x-amzn-errortype") or document.get("__type") or document.get("code") or "UnknownError"
    error_type = error_type.split(":")[0].split("#")[-1]
    message = document.get("message") or document.get("Message") or body.decode("utf-8", "replace").strip()[:200]
    request_id = headers.get("x-amzn-requestid") or ""
    return ServiceError(status, error_type, message or "no message", request_id)


class _MalformedResponse(OSError):
    """The peer's answer is not HTTP/1.x."""


class _Reader:
    """Buffered ``readline``/``read`` over a socket's ``recv`` (``makefile`` needs the socket module)."""

    def __init__(self, sock):
        self._sock = sock
        self._buffer = b""

    def _fill(self) -> bool:
        chunk = self._sock.recv(65536)
        self._buffer += chunk
        return bool(chunk)

    def _take(self, size: int) -> bytes:
        taken, self._buffer = self._buffer[:size], self._buffer[size:]
        return taken

    def readline(self, limit: int) -> bytes:
        while b"\n" not in self._buffer and len(self._buffer) < limit and self._fill():
            pass
        end = self._buffer.find(b"\n", 0, limit)
        return self._take(end + 1 if end >= 0 else limit)

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._buffer) < size) and self._fill():
            pass
        return self._take(len(self._buffer) if size < 0 else size)

    def pending(self) -> bool:
        return bool(self._buffer)


def _read_head(stream):
    """Status code and headers (names lowercased) of an HTTP/1.x response."""
    status_line = stream.readline(65537).decode("latin-1")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise _MalformedResponse(f"not an HTTP response ({status_line.strip()[:60]!r})")
    headers = {}
    while True:
        line = stream.readline(65537).decode("latin-1")
        if line in ("\r\n", "\n", ""):
            return int(parts[1]), headers
        name, _sep, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()


def _read_body(stream, headers) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(stream.readline(65537).split(b";")[0].strip() or b"0", 16)
            if not size:
                return b"".join(chunks)
            chunks.append(stream.read(size))
            stream.readline(65537)
    if "content-length" in headers:
        return stream.read(int(headers["content-length"]))
    return stream.read()


def _connect(host: str, port: int, timeout):
    """A connected ``_socket.socket``: socket.create_connection without the socket module, whose enums cost
    more than a whole plain-HTTP request; https wraps it in the socket module's class for ssl."""
    import _socket

    if host.isascii():
        host = host.encode("ascii")  # a str host costs an import of the idna codec
    error = OSError(f"no address for {host!r}")
    for family, kind, proto, _name, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


def _tls_stores(ca_bundle, verify):
    """Ways to trust the endpoint, each a function making a context, tried in turn on a verification failure.

    The system store's hashed directory comes first when it has one (Debian's /etc/ssl/certs): OpenSSL then
    reads only the certificates a chain needs, where loading the whole bundle file costs every start ~20 ms.
    """
    import ssl

    def context(**where):
        made = ssl.create_default_context(**where)
        made.minimum_version = ssl.TLSVersion.TLSv1_2
        if not verify:
            made.check_hostname = False
            made.verify_mode = ssl.CERT_NONE
        return made

    if ca_bundle or not verify:
        return [lambda: context(cafile=ca_bundle)]
    paths = ssl.get_default_verify_paths()
    directory = paths.capath  # SSL_CERT_DIR or OpenSSL's default, when it exists
    try:
        hashed = directory and not os.environ.get(paths.openssl_cafile_env) and any(
            len(name) == 10 and name.endswith(".0") for name in os.listdir(directory))
    except OSError:
        hashed = False
    return ([lambda: context(capath=directory)] if hashed else []) + [context]


def _open_socket(url, ca_bundle, verify, timeout, with_proxy):
    """A connected socket (TLS for https), through HTTPS_PROXY/HTTP_PROXY's CONNECT tunnel when asked for.

    A single request needs so little of http.client that importing it would cost the helper more than the request.
    """
    if url.scheme not in ("http", "https"):
        raise ConfigurationError(f"endpoint scheme {url.scheme!r} is not supported: use https:// or http://")
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    proxy_url = None
    if with_proxy:
        # Like the Go helper, proxy variables are honoured only when asked for.
        import urllib.request

        proxy = urllib.request.getproxies().get(url.scheme)
        if proxy and not urllib.request.proxy_bypass(host):
            proxy_url = Url(proxy if "://" in proxy else f"http://{proxy}")

    def connect():
        sock = _connect(*((proxy_url.hostname, proxy_url.port or 8080) if proxy_url else (host, port)), timeout)
        try:
            if proxy_url:
                authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode("ascii"))
                reply = _Reader(sock)
                status, _headers = _read_head(reply)
                if status != 200 or reply.pending():
                    raise _MalformedResponse(f"the proxy refused the tunnel (HTTP {status})")
            return sock
        except BaseException:
            sock.close()
            raise

    if url.scheme == "http":
        return connect()
    import socket
    import ssl

    stores = _tls_stores(ca_bundle, verify)
    # An ASCII name as bytes: a str goes through the idna codec (re, stringprep, unicodedata: ~5 ms per start).
    server_name = host.encode("ascii") if host.isascii() else host
    for attempt, store in enumerate(stores, 1):
        sock = socket.socket(fileno=connect().detach())
        try:
            sock.settimeout(timeout)
            return store().wrap_socket(sock, server_hostname=server_name)
        except ssl.SSLCertVerificationError:
            sock.close()
            if attempt == len(stores):
                raise
        except BaseException:
            sock.close()
            raise


def _post(url, path, body, headers, service, ca_bundle, verify, timeout, with_proxy):
    """POST ``body`` and return ``(status, headers with lowercased names, body)``.

    An unreachable endpoint, a failed TLS handshake or a garbled answer is a TransportError.
    """
    host = url.netloc.rsplit("@", 1)[-1]
    fields = dict(headers, **{"Content-Length": str(len(body)), "Connection": "close"})
    request = f"POST {path} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in fields.items()) + "\r\n"
    try:
        sock = _open_socket(url, ca_bundle, verify, timeout, with_proxy)
        try:
            sock.sendall(request.encode("latin-1") + body)  # one write: no Nagle wait between head and body
            stream = _Reader(sock)
            status, answer_headers = _read_head(stream)
            return status, answer_headers, _read_body(stream, answer_headers)
        finally:
            sock.close()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        raise TransportError(f"cannot reach the {service} endpoint {url.scheme}://{host}: {reason}") from None


def create_session(
    key,
    certificate,
    *,
    trust_anchor_arn: str,
    profile_arn: str,
    role_arn: str,
    region: str | None = None,
    endpoint: str | None = None,
    chain: list | tuple = (),
    duration_seconds: int = DEFAULT_DURATION,
    role_session_name: str | None = None,
    ca_bundle: str | None = None,
    verify: bool = True,
    with_proxy: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> Session:
    """Call CreateSession and return the parsed credentials; raises a RolesAnywhereError subclass."""
    region = signing_region(trust_anchor_arn, profile_arn, region)
    url = Url(endpoint or default_endpoint(region))
    if not url.hostname:
        raise ConfigurationError(f"endpoint {endpoint!r} has no host: use e.g. https://host:port")
    host = url.netloc.rsplit("@", 1)[-1]
    signed = sign_request(
        key,
        certificate,
        host=host,
        region=region,
        trust_anchor_arn=trust_anchor_arn,
        profile_arn=profile_arn,
        role_arn=role_arn,
        body=request_body(duration_seconds, role_session_name),
        chain=chain,
    )
    path = url.path.rstrip("/") + CANONICAL_URI + "?" + signed.query
    headers = dict(signed.headers, **{"User-Agent": USER_AGENT})
    status, answer_headers, body = _post(url, path, signed.body, headers, "Roles Anywhere", ca_bundle, verify, timeout,
                                         with_proxy)
    if status not in (200, 201):
        raise _error_from_response(status, answer_headers, body)
    return parse_session_response(body)


# ---------------------------------------------------------------- proving the credentials

def _hmac(key: bytes, text: str) -> bytes:
    import hashlib
    import hmac

    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def get_caller_identity(
    session: Session,
    region: str,
    *,
    endpoint: str | None = None,
    ca_bundle: str | None = None,
    verify: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict:
    """sts:GetCallerIdentity with the session's credentials: ``{"arn", "account", "user_id"}``.

    Plain SigV4 (HMAC) with the standard library, so hosts need no boto3 to prove their credentials.
    """
    from xml.etree import ElementTree

    url = Url(endpoint or f"https://sts.{region}.amazonaws.com")
    if not url.hostname:
        raise ConfigurationError(f"STS endpoint {endpoint!r} has no host: use e.g. https://host:port")
    host = url.netloc.rsplit("@", 1)[-1]
    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    date = amz_date(datetime.datetime.now(datetime.timezone.utc))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "Host": host,
        "X-Amz-Date": date,
        "X-Amz-Security-Token": session.session_token,
    }
    path = url.path.rstrip("/") or "/"
    canonical, signed_headers = canonical_request("POST", "", headers, body, uri=path)
    to_sign = string_to_sign("AWS4-HMAC-SHA256", date, region, canonical, "sts")
    key = ("AWS4" + session.secret_access_key).encode("utf-8")
    for part in (date[:8], region, "sts", "aws4_request"):
        key = _hmac(key, part)
    signature = _hmac(key, to_sign).hex()
    headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={session.access_key_id}/"
                                f"{credential_scope(date, region, 'sts')}, SignedHeaders={signed_headers}, "
                                f"Signature={signature}")
    status, _headers, answer = _post(url, path, body, headers, "STS", ca_bundle, verify, timeout, False)
    try:
        document = ElementTree.fromstring(answer)
    except ElementTree.ParseError:
        document = None

    def field(name):
        found = None if document is None else document.find(f".//{{*}}{name}")
        return found.text if found is not None and found.text else ""

    if status != 200:
        raise ServiceError(status, field("Code") or "UnknownError", field("Message") or "no message",
                           field("RequestId"), operation="STS: GetCallerIdentity")
    identity = {"arn": field("Arn"), "account": field("Account"), "user_id": field("UserId")}
    if not identity["arn"]:
        raise ResponseError("sts:GetCallerIdentity answered without an Arn")
    return identity
