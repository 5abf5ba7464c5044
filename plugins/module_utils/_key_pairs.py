# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A key pair on a token made present or absent, as pkcs11_key does; pkcs11_csr uses it to make its key first."""
from __future__ import annotations

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11


def _describe(keypair, token_label):
    public_key = _pkcs11.public_key_of(keypair)
    info = _pkcs11.describe_public_key(public_key)
    result = dict(
        label=keypair.label,
        id=keypair.key_id.hex(),
        uri=_pkcs11.pkcs11_uri(token_label, keypair.label, keypair.key_id or None),
        public_key=_pkcs11.public_key_pem(public_key),
        key_type=info["key_type"],
        size=info["size"],
        attributes=_pkcs11.key_protection(keypair.private),
    )
    if info["curve"]:
        result["curve"] = info["curve"]
    return result


def _wanted(params, key_type, curve, size):
    summary = dict(label=params["label"], key_type=key_type, size=size or {"secp256r1": 256, "secp384r1": 384}[curve])
    if curve:
        summary["curve"] = curve
    return summary


def _summary(described):
    return {name: described[name] for name in ("label", "key_type", "curve", "size", "id") if name in described}


def ensure(session, params, check_mode):
    """The key pair that ``params`` (pkcs11_key's options) describe made present or absent; the result."""
    label = _pkcs11.check_key_label(params["label"])
    key_id = _pkcs11.parse_key_id(params["id"])
    token_label = params["token_label"]
    if params["state"] == "absent":
        existing = _pkcs11.find_keypair(session, label, key_id)
        if existing is None:
            return dict(changed=False, label=label)
        before = _summary(_describe(existing, token_label))
        if not check_mode:
            _pkcs11.destroy_keypair(existing)
        return dict(changed=True, label=label, diff=dict(before=before, after={}))

    existing = _pkcs11.find_keypair(session, label)
    if existing is not None and key_id is not None and existing.key_id != key_id:
        raise _pkcs11.TokenError("a key labelled %r already exists with id %s, not %s: choose another label or id, "
                                 "or remove the old key with state=absent"
                                 % (label, existing.key_id.hex() or "(empty)", key_id.hex()))

    key_type, curve, size = _pkcs11.check_key_request(params["key_type"], params["curve"], params["size"])
    before = {}
    if existing is not None:
        described = _describe(existing, token_label)
        matches = _pkcs11.keypair_matches(existing, key_type, curve, size)
        problems = _pkcs11.protection_problems(described["attributes"])
        if matches and not problems:
            return dict(changed=False, **described)
        if not params["force"]:
            if matches:
                raise _pkcs11.TokenError("the existing key %r is not protected (%s): its private key may have left "
                                         "the token; replace it with force=true" % (label, ", ".join(problems)))
            raise _pkcs11.TokenError(
                "a key labelled %r already exists as %s, but %s was requested: choose another label, or set "
                "force=true to destroy the old key and generate a new one"
                % (label, _kind(described), _kind(_wanted(params, key_type, curve, size))))
        before = _summary(described)

    if check_mode:
        predicted = _wanted(params, key_type, curve, size)
        predicted_id = key_id.hex() if key_id is not None else ""
        result = dict(predicted, id=predicted_id, public_key="",
                      uri=_pkcs11.pkcs11_uri(token_label, label, key_id))
        return dict(changed=True, diff=dict(before=before, after=dict(predicted, id=predicted_id)), **result)

    if existing is not None:
        _pkcs11.destroy_keypair(existing)
    # A run killed inside key generation may have left a public half: it would pair with nothing.
    orphans = _pkcs11.orphan_public_keys(session, label)
    _pkcs11.destroy_objects(orphans)
    keypair = _pkcs11.generate_keypair(session, label, key_type, curve, size, key_id)
    described = _describe(keypair, token_label)
    return dict(changed=True, diff=dict(before=before, after=_summary(described)), orphans_removed=len(orphans),
                **described)


def _kind(summary):
    if summary["key_type"] == "ec":
        return "EC %s" % summary["curve"]
    return "RSA-%d" % summary["size"]
