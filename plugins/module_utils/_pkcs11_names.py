# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Token and key names, key ids and RFC 7512 ``pkcs11:`` URIs: checked without python-pkcs11.

Kept apart from _pkcs11 so that code which only names a key (the AWS config writer) does not pay for importing
python-pkcs11 and cryptography. Pure Python (standard library).
"""
from __future__ import annotations

import re
from urllib.parse import quote

from ansible_collections.rolesanywhere.fleet.plugins.module_utils._token_signer import TokenError

TOKEN_LABEL_MAX_BYTES = 32  # CK_TOKEN_INFO.label is 32 blank-padded bytes
_HEX_ID = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


def check_str(name, value, allow_empty=False):
    if not isinstance(value, str):
        raise TokenError("%s must be a string, got %s" % (name, type(value).__name__))
    if not allow_empty and not value:
        raise TokenError("%s must not be empty" % name)
    if "\x00" in value:
        raise TokenError("%s must not contain NUL characters" % name)
    return value


def check_token_label(label):
    check_str("token_label", label)
    if len(label.encode("utf-8")) > TOKEN_LABEL_MAX_BYTES:
        raise TokenError("token_label %r is longer than %d bytes (UTF-8): PKCS#11 token labels are at most 32 bytes"
                         % (label, TOKEN_LABEL_MAX_BYTES))
    if label != label.rstrip(" "):
        raise TokenError("token_label %r ends with blanks: tokens blank-pad labels, so it could never match" % label)
    return label


def check_key_label(label):
    return check_str("label", label)


def parse_key_id(value):
    """A CKA_ID from user input: hex string (``"01"``, ``"a1b2"``, colons allowed) or bytes; None stays None."""
    if value is None or isinstance(value, bytes):
        if value == b"":
            raise TokenError("id must not be empty: give at least one byte as hex, e.g. id: '01'")
        return value
    if not isinstance(value, str):
        raise TokenError("id must be a hex string such as '01' or 'a1b2c3', got %s %r: quote it in YAML"
                         % (type(value).__name__, value))
    text = value.replace(":", "").strip()
    if not _HEX_ID.match(text):
        raise TokenError("id %r is not hex: give an even number of hex digits, e.g. id: '01' or id: 'a1b2c3'" % value)
    return bytes.fromhex(text)


def check_key_id(key_id):
    if key_id is not None and not isinstance(key_id, bytes):
        raise TokenError("key id must be bytes (use parse_key_id for hex input), got %s" % type(key_id).__name__)
    return key_id


_URI_OBJECT_TYPES = ("private", "public", "cert", "secret-key", "data")


def _pct(value, safe=""):
    if isinstance(value, bytes):
        return "".join("%%%02X" % b for b in value)
    return quote(value, safe=safe)


def pkcs11_uri(token_label, label, key_id=None, object_type="private", pin_value=None, pin_source=None,
               module_path=None):
    """An RFC 7512 ``pkcs11:`` URI for an object. The PIN goes into the query (``?pin-value=``: the only
    place AWS's signing helper reads it) or, better, as ``?pin-source=file:...``.
    """
    check_token_label(token_label)
    check_key_label(label)
    check_key_id(key_id)
    if object_type not in _URI_OBJECT_TYPES:
        raise TokenError("object_type must be one of %s" % ", ".join(_URI_OBJECT_TYPES))
    if pin_value is not None and pin_source is not None:
        raise TokenError("give pin_value or pin_source, not both")
    path = ["token=" + _pct(token_label)]
    if key_id:
        path.append("id=" + _pct(key_id))
    path += ["object=" + _pct(label), "type=" + object_type]
    query = []
    if module_path is not None:
        query.append("module-path=" + _pct(check_str("module_path", module_path), safe="/"))
    if pin_value is not None:
        query.append("pin-value=" + _pct(check_str("pin_value", pin_value)))
    if pin_source is not None:
        source = check_str("pin_source", pin_source)
        if source.startswith("/"):
            source = "file:" + source
        query.append("pin-source=" + _pct(source, safe="/:"))
    return "pkcs11:" + ";".join(path) + ("?" + "&".join(query) if query else "")
