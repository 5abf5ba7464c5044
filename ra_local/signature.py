"""SigV4-X509 verification of CreateSession requests, written from the protocol notes (§4) alone.

It deliberately shares nothing with the collection's signer (plugins/module_utils/_sigv4x509.py): the two
implementations are checked against each other only through AWS's captured requests.
"""
import base64
import binascii
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote_to_bytes

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from ra_local.errors import AccessDeniedError

SERVICE = "rolesanywhere"
KEY_TYPES = {
    f"AWS4-X509-{kind}-{digest}": key_type
    for kind, key_type in (("RSA", rsa.RSAPublicKey), ("ECDSA", ec.EllipticCurvePublicKey))
    for digest in ("SHA256", "SHA384", "SHA512")
}
# iam-rolesanywhere-session names the algorithm after the certificate's signature hash while always signing
# with SHA-256 (protocol notes §4.4); whether AWS accepts those names is unverified, so they are flagged.
STANDARD_ALGORITHMS = ("AWS4-X509-RSA-SHA256", "AWS4-X509-ECDSA-SHA256")
REQUIRED_SIGNED = ("host", "x-amz-date", "x-amz-x509")
UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
INVALID = "Invalid signature"
log = logging.getLogger("ra_local")


@dataclass
class VerifiedRequest:
    leaf: x509.Certificate
    chain: list
    signed_at: datetime


def _encode(raw):
    """RFC 3986 percent-encoding of bytes: unreserved characters as-is, everything else %XX (upper case)."""
    return "".join(chr(b) if b in UNRESERVED else f"%{b:02X}" for b in raw)


def canonical_uri(path):
    return "/".join(_encode(unquote_to_bytes(segment)) for segment in path.split("/")) or "/"


def canonical_query(raw_query):
    """Query parameters decoded as received, re-encoded, sorted by key then value."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((_encode(unquote_to_bytes(key)), _encode(unquote_to_bytes(value))))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _header_values(headers, name):
    return [value for key, value in headers if key.lower() == name]


def canonical_request(method, path, raw_query, headers, signed_headers, body):
    lines = [method, canonical_uri(path), canonical_query(raw_query)]
    for name in signed_headers.split(";"):
        values = (" ".join(value.split()) for value in _header_values(headers, name))
        lines.append(f"{name}:{','.join(values)}")
    lines += ["", signed_headers, hashlib.sha256(body).hexdigest()]
    return "\n".join(lines)


def string_to_sign(algorithm, amz_date, scope, canonical):
    return "\n".join([algorithm, amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])


def _parse_authorization(value):
    algorithm, _, rest = value.strip().partition(" ")
    fields = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if sep:
            fields[key] = val
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
    if missing:
        raise AccessDeniedError(f"{INVALID}: Authorization header lacks {', '.join(missing)}")
    return algorithm, fields


def _decode_certificate(text, what):
    try:
        return x509.load_der_x509_certificate(base64.b64decode(text.strip(), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise AccessDeniedError(f"{INVALID}: {what} is not a base64 DER certificate ({exc})") from None


def verify(method, path, raw_query, headers, body, region, now, clock_skew, strict_algorithm=False):
    """Check a CreateSession request's signature as AWS does (protocol §4.9 steps 1-4).

    ``headers`` is the list of (name, value) pairs as received; ``body`` the de-chunked body. The signature
    is always SHA-256; ``strict_algorithm`` refuses algorithm names with another hash, else they are logged.
    Raises AccessDeniedError naming the failed check.
    """
    authorization = _header_values(headers, "authorization")
    if len(authorization) != 1:
        raise AccessDeniedError(f"{INVALID}: expected one Authorization header, got {len(authorization)}")
    algorithm, fields = _parse_authorization(authorization[0])
    if algorithm not in KEY_TYPES or (strict_algorithm and algorithm not in STANDARD_ALGORITHMS):
        accepted = STANDARD_ALGORITHMS if strict_algorithm else KEY_TYPES
        raise AccessDeniedError(f"{INVALID}: unsupported algorithm '{algorithm}' (expected one of {', '.join(accepted)})")
    if algorithm not in STANDARD_ALGORITHMS:
        log.warning("algorithm name %s is not one AWS documents; verifying it as SHA-256 (--strict-algorithm refuses it)", algorithm)

    scope_parts = fields["Credential"].split("/")
    if len(scope_parts) != 5:
        raise AccessDeniedError(f"{INVALID}: Credential must be <serial>/<date>/<region>/{SERVICE}/aws4_request")
    serial, scope_date, scope_region, scope_service, terminator = scope_parts
    if scope_service != SERVICE or terminator != "aws4_request":
        raise AccessDeniedError(
            f"{INVALID}: credential scope names service '{scope_service}' / '{terminator}', "
            f"expected '{SERVICE}' / 'aws4_request'"
        )
    if scope_region != region:
        raise AccessDeniedError(f"{INVALID}: credential scope region '{scope_region}' is not this endpoint's region '{region}'")

    dates = _header_values(headers, "x-amz-date")
    if len(dates) != 1:
        raise AccessDeniedError(f"{INVALID}: expected one X-Amz-Date header, got {len(dates)}")
    amz_date = dates[0].strip()
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise AccessDeniedError(f"{INVALID}: X-Amz-Date '{amz_date}' is not YYYYMMDDTHHMMSSZ") from None
    if scope_date != amz_date[:8]:
        raise AccessDeniedError(f"{INVALID}: credential scope date {scope_date} differs from X-Amz-Date {amz_date}")
    skew = timedelta(seconds=clock_skew)
    if abs(now - signed_at) > skew:
        raise AccessDeniedError(
            f"Signature expired: X-Amz-Date {amz_date} is outside the allowed clock skew of {clock_skew} s "
            f"(server time {now.strftime('%Y%m%dT%H%M%SZ')})"
        )

    signed_headers = fields["SignedHeaders"]
    names = signed_headers.split(";")
    required = list(REQUIRED_SIGNED)
    if _header_values(headers, "x-amz-x509-chain"):
        required.append("x-amz-x509-chain")
    unsigned = [name for name in required if name not in names]
    if unsigned:
        raise AccessDeniedError(f"{INVALID}: SignedHeaders must include {', '.join(unsigned)}")
    if names != sorted(names) or any(name != name.lower() for name in names):
        raise AccessDeniedError(f"{INVALID}: SignedHeaders must be lower-case and sorted")
    absent = [name for name in names if not _header_values(headers, name)]
    if absent:
        raise AccessDeniedError(f"{INVALID}: signed header(s) {', '.join(absent)} not present in the request")

    leaf = _decode_certificate(_header_values(headers, "x-amz-x509")[0], "X-Amz-X509")
    if serial != str(leaf.serial_number):
        raise AccessDeniedError(
            f"{INVALID}: Credential serial {serial} is not the X-Amz-X509 certificate's serial {leaf.serial_number} (decimal)"
        )
    chain = []
    for value in _header_values(headers, "x-amz-x509-chain"):
        chain += [_decode_certificate(item, "X-Amz-X509-Chain entry") for item in value.split(",") if item.strip()]

    public_key = leaf.public_key()
    if not isinstance(public_key, KEY_TYPES[algorithm]):
        raise AccessDeniedError(f"{INVALID}: algorithm {algorithm} does not match the certificate's key type")
    try:
        signature = bytes.fromhex(fields["Signature"])
    except ValueError:
        raise AccessDeniedError(f"{INVALID}: Signature is not hex") from None
    scope = "/".join(scope_parts[1:])
    message = string_to_sign(
        algorithm, amz_date, scope, canonical_request(method, path, raw_query, headers, signed_headers, body)
    ).encode("utf-8")
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AccessDeniedError(
            f"{INVALID}: the signature does not verify with the X-Amz-X509 certificate's key over the canonical request"
        ) from None
    return VerifiedRequest(leaf=leaf, chain=chain, signed_at=signed_at)
