# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The few DER structures the signer reads, with the standard library alone.

The bundled helper runs once per credential refresh: importing cryptography.x509 or asn1crypto would cost it
more than the whole signature. This reads a certificate's serial, validity and public key, unencrypted
EC/RSA private keys (PKCS#8, SEC1, PKCS#1) and PEM armour; anything else is left to cryptography. It also
picks the SHA-256 that costs least to import.
"""
from __future__ import annotations

import binascii
import datetime
import sys

OID_EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")
OID_RSA_ENCRYPTION = bytes.fromhex("2a864886f70d010101")
CURVES = {  # named-curve OID contents -> (name, field size in bytes)
    bytes.fromhex("2a8648ce3d030107"): ("secp256r1", 32),
    bytes.fromhex("2b81040022"): ("secp384r1", 48),
    bytes.fromhex("2b81040023"): ("secp521r1", 66),
}
INTEGER, BIT_STRING, OCTET_STRING, OID, SEQUENCE = 0x02, 0x03, 0x04, 0x06, 0x30
UTC_TIME, GENERALIZED_TIME = 0x17, 0x18


def sha256(data: bytes = b""):
    """hashlib.sha256 without importing hashlib, which loads OpenSSL's libcrypto (milliseconds per start)."""
    try:
        if sys.version_info >= (3, 12):
            from _sha2 import sha256 as builtin
        else:
            from _sha256 import sha256 as builtin
    except ImportError:  # an interpreter built without its own SHA-2
        from hashlib import sha256 as builtin
    return builtin(data)


class DerError(ValueError):
    """The bytes are not the DER structure expected."""


def read(data: bytes, offset: int = 0):
    """``(tag, value_start, value_end)`` of the TLV at ``offset`` (definite lengths only, as DER requires)."""
    try:
        tag, length = data[offset], data[offset + 1]
        start = offset + 2
        if length & 0x80:
            count = length & 0x7F
            if not 0 < count <= 4:
                raise DerError("unsupported DER length")
            length = int.from_bytes(data[start:start + count], "big")
            start += count
    except IndexError:
        raise DerError("truncated DER") from None
    end = start + length
    if end > len(data):
        raise DerError("truncated DER")
    return tag, start, end


def children(data: bytes, start: int, end: int):
    """The TLVs directly inside a constructed value, as ``(tag, start, end)``."""
    found = []
    while start < end:
        tag, value_start, value_end = read(data, start)
        found.append((tag, value_start, value_end))
        start = value_end
    return found


def _expect(item, tag, what):
    if item[0] != tag:
        raise DerError(f"{what}: unexpected DER tag {item[0]:#x}")
    return item


def _integer(data, item) -> int:
    _expect(item, INTEGER, "integer")
    return int.from_bytes(data[item[1]:item[2]], "big", signed=True)


def _time(data, item) -> datetime.datetime:
    text = data[item[1]:item[2]].decode("ascii")
    if item[0] == UTC_TIME and len(text) == 13:
        year = int(text[:2])
        text = ("19" if year >= 50 else "20") + text
    elif item[0] != GENERALIZED_TIME or len(text) != 15:
        raise DerError("unsupported certificate time")
    if not text.endswith("Z"):
        raise DerError("certificate time is not in UTC")
    return datetime.datetime(int(text[:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]),
                             int(text[12:14]), tzinfo=datetime.timezone.utc)


def public_key_material(data: bytes, item):
    """A SubjectPublicKeyInfo as comparable values: ``("ec", curve, point)`` or ``("rsa", n, e)``."""
    algorithm, key = children(data, item[1], item[2])[:2]
    parts = children(data, algorithm[1], algorithm[2])
    oid = data[parts[0][1]:parts[0][2]]
    bits = data[key[1] + 1:key[2]]  # the first byte counts unused bits (0 for keys)
    if oid == OID_EC_PUBLIC_KEY and len(parts) > 1 and parts[1][0] == OID:
        curve = CURVES.get(data[parts[1][1]:parts[1][2]], ("unknown", 0))[0]
        return ("ec", curve, bytes(bits))
    if oid == OID_RSA_ENCRYPTION:
        numbers = children(bits, *read(bits)[1:])
        return ("rsa", _integer(bits, numbers[0]), _integer(bits, numbers[1]))
    return ("unsupported", oid.hex(), b"")


class Certificate:
    """What the signer needs of an X.509 certificate: DER, serial, validity and the public key."""

    def __init__(self, der: bytes):
        try:
            outer = _expect(read(der), SEQUENCE, "certificate")
            if outer[2] != len(der):
                raise DerError("trailing bytes after the certificate")
            tbs = _expect(children(der, outer[1], outer[2])[0], SEQUENCE, "tbsCertificate")
            fields = children(der, tbs[1], tbs[2])
            if fields[0][0] == 0xA0:  # [0] EXPLICIT version
                fields = fields[1:]
            self.serial_number = _integer(der, fields[0])
            validity = children(der, *_expect(fields[3], SEQUENCE, "validity")[1:])
            self.not_valid_before_utc = _time(der, validity[0])
            self.not_valid_after_utc = _time(der, validity[1])
            self.public_key_material = public_key_material(der, _expect(fields[5], SEQUENCE, "public key"))
        except (IndexError, ValueError) as exc:
            raise DerError(f"not an X.509 certificate ({exc})") from None
        self.der = bytes(der)


def pem_blocks(data: bytes):
    """``[(label, der), ...]`` for every ``-----BEGIN label-----`` block."""
    blocks = []
    for chunk in data.split(b"-----BEGIN ")[1:]:
        label, _sep, rest = chunk.partition(b"-----")
        body, end, _tail = rest.partition(b"-----END ")
        if not end:
            raise DerError("unterminated PEM block")
        lines = [line for line in body.split(b"\n") if line.strip() and b":" not in line]
        try:
            blocks.append((label.decode("ascii"), binascii.a2b_base64(b"".join(lines))))
        except (binascii.Error, UnicodeDecodeError):
            raise DerError("bad base64 in a PEM block") from None
    return blocks


def encode_ecdsa_signature(raw: bytes) -> bytes:
    """r||s (as PKCS#11 CKM_ECDSA returns it) as a DER Ecdsa-Sig-Value."""
    half = len(raw) // 2
    parts = b""
    for value in (raw[:half], raw[half:]):
        value = value.lstrip(b"\x00") or b"\x00"
        if value[0] & 0x80:
            value = b"\x00" + value
        parts += bytes([INTEGER]) + _length(len(value)) + value
    return bytes([SEQUENCE]) + _length(len(parts)) + parts


def _length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def unwrap_octet_string(value: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING on most tokens and the raw point on some."""
    if value[:1] == bytes([OCTET_STRING]):
        try:
            tag, start, end = read(value)
            if end == len(value):
                return value[start:end]
        except DerError:
            pass
    return value


def private_key_numbers(label: str, der: bytes):
    """An unencrypted key as ``("ec", curve, d)`` or ``("rsa", (n, e, d, p, q, dp, dq, qinv))``; None otherwise.

    ``label`` is the PEM label: PRIVATE KEY (PKCS#8), EC PRIVATE KEY (SEC1) or RSA PRIVATE KEY (PKCS#1).
    """
    try:
        if label == "PRIVATE KEY":
            fields = children(der, *read(der)[1:])
            algorithm = children(der, fields[1][1], fields[1][2])
            oid = der[algorithm[0][1]:algorithm[0][2]]
            inner = der[fields[2][1]:fields[2][2]]
            if oid == OID_RSA_ENCRYPTION:
                return private_key_numbers("RSA PRIVATE KEY", inner)
            if oid == OID_EC_PUBLIC_KEY and len(algorithm) > 1:
                return _ec_private(inner, der[algorithm[1][1]:algorithm[1][2]])
            return None
        if label == "EC PRIVATE KEY":
            return _ec_private(der, None)
        if label == "RSA PRIVATE KEY":
            fields = children(der, *read(der)[1:])
            return ("rsa", tuple(_integer(der, item) for item in fields[1:9]))
    except (IndexError, ValueError):
        return None
    return None


def _ec_private(der: bytes, curve_oid):
    fields = children(der, *read(der)[1:])
    secret = int.from_bytes(der[fields[1][1]:fields[1][2]], "big")
    for tag, start, end in fields[2:]:
        if tag == 0xA0 and curve_oid is None:
            inner = read(der, start)
            curve_oid = der[inner[1]:inner[2]]
    if curve_oid not in CURVES:
        return None
    return ("ec", CURVES[curve_oid][0], secret)
