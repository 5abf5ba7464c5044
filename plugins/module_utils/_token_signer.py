# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sign with a key on a PKCS#11 token through ctypes alone: the bundled helper's cold path.

python-pkcs11 imports asn1crypto and typing-heavy modules that cost the helper more than a whole
CreateSession; a credential refresh only needs to find one key, log in once and sign once. Token
administration (keys, CSRs, certificates) stays with _pkcs11 and python-pkcs11. PIN reading and the
login error texts live here so that both paths say the same thing.
"""
from __future__ import annotations

import ctypes
import os
import stat

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _der

CKF_SERIAL_SESSION, CKF_OS_LOCKING_OK, CKF_TOKEN_INITIALIZED = 0x4, 0x2, 0x400
CKU_USER = 1
CKO_PUBLIC_KEY, CKO_PRIVATE_KEY = 2, 3
CKA_CLASS, CKA_LABEL, CKA_KEY_TYPE, CKA_ID = 0x0, 0x3, 0x100, 0x102
CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_EC_PARAMS, CKA_EC_POINT = 0x120, 0x122, 0x180, 0x181
CKK_RSA, CKK_EC = 0x0, 0x3
CKM_SHA256_RSA_PKCS, CKM_ECDSA = 0x40, 0x1041
CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191

# Keyed by python-pkcs11's exception names, which _pkcs11 sees; the codes are what ctypes sees.
LOGIN_PROBLEMS = {
    "PinIncorrect": "the PIN for token {label!r} was rejected. It was tried once and is not retried (tokens lock "
                    "after repeated failures): fix pin or pin_file",
    "PinLocked": "token {label!r} has locked the user PIN after too many failed logins: unlock it (TPM: "
                 "tpm2_dictionarylockout --clear-lockout; HSM: the security officer unblocks it)",
    "PinLenRange": "the PIN for token {label!r} has an invalid length or characters for this token: fix pin or pin_file",
    "UserPinNotInitialized": "token {label!r} has no user PIN yet: initialise it with rolesanywhere.fleet.pkcs11_token "
                             "(so_pin and user_pin)",
    "TokenNotRecognised": "token {label!r} is not initialised: initialise it with rolesanywhere.fleet.pkcs11_token",
    "UserAlreadyLoggedIn": "this process is already logged in to token {label!r}: use the open session instead of "
                           "opening another one",
}
LOGIN_PROBLEMS["PinInvalid"] = LOGIN_PROBLEMS["PinLenRange"]
_LOGIN_CODES = {0xA0: "PinIncorrect", 0xA4: "PinLocked", 0xA2: "PinLenRange", 0xA1: "PinInvalid",
                0x102: "UserPinNotInitialized", 0xE1: "TokenNotRecognised", 0x100: "UserAlreadyLoggedIn"}


class TokenError(Exception):
    """A problem with a token, its PIN or its keys. The message names the problem and the fix and
    never contains a PIN."""


def read_pin(pin, pin_file, token_label):
    """The user PIN, given or from ``pin_file`` (a regular file not readable by group/others)."""
    if pin is None and pin_file is not None:
        try:
            fd = os.open(pin_file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise TokenError("cannot read pin_file %s: %s" % (pin_file, exc.strerror)) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise TokenError("pin_file %s is not a regular file" % pin_file)
            if info.st_mode & 0o077:
                raise TokenError("pin_file %s has mode %04o: it must not be accessible by group or others; "
                                 "run chmod 0600 %s" % (pin_file, stat.S_IMODE(info.st_mode), pin_file))
            with os.fdopen(fd, "r", encoding="utf-8", closefd=False) as handle:
                pin = handle.read()
        finally:
            os.close(fd)
        pin = pin[:-1] if pin.endswith("\n") else pin
        pin = pin[:-1] if pin.endswith("\r") else pin
    elif pin is None:
        raise TokenError("no PIN given for token %r: set pin or pin_file" % token_label)
    if not pin:
        raise TokenError("the PIN for token %r is empty: fix pin or pin_file" % token_label)
    return pin


CK_ULONG = ctypes.c_ulong


class _TokenInfo(ctypes.Structure):
    _fields_ = [("label", ctypes.c_char * 32), ("manufacturer", ctypes.c_char * 32), ("model", ctypes.c_char * 16),
                ("serial", ctypes.c_char * 16), ("flags", CK_ULONG), ("counters", CK_ULONG * 10),
                ("versions", ctypes.c_ubyte * 4), ("utc_time", ctypes.c_char * 16)]


class _Attribute(ctypes.Structure):
    _fields_ = [("type", CK_ULONG), ("value", ctypes.c_void_p), ("length", CK_ULONG)]


class _InitArgs(ctypes.Structure):
    _fields_ = [("mutex_functions", ctypes.c_void_p * 4), ("flags", CK_ULONG), ("reserved", ctypes.c_void_p)]


class _Mechanism(ctypes.Structure):
    _fields_ = [("mechanism", CK_ULONG), ("parameter", ctypes.c_void_p), ("length", CK_ULONG)]


def _template(values):
    """A CK_ATTRIBUTE array; the buffers are returned too so they live as long as the array."""
    buffers, array = [], (_Attribute * len(values))()
    for slot, (kind, value) in zip(array, values):
        data = value if isinstance(value, bytes) else CK_ULONG(value)
        buffer = ctypes.create_string_buffer(data, len(data)) if isinstance(data, bytes) else data
        buffers.append(buffer)
        slot.type, slot.value, slot.length = kind, ctypes.addressof(buffer), ctypes.sizeof(buffer)
    return array, buffers


class TokenKey:
    """One private key on a token, logged in, for the signer: ``sigv4_sign`` and ``public_key_material``."""

    def __init__(self, module_path, token_label, label, key_id=None, pin=None, pin_file=None):
        pin = read_pin(pin, pin_file, token_label)
        self.label = label
        self._lib = ctypes.CDLL(module_path)
        self._session = CK_ULONG()
        self._initialized = False
        args = _InitArgs(flags=CKF_OS_LOCKING_OK)
        code = self._lib.C_Initialize(ctypes.byref(args))
        self._check(code, "C_Initialize", allow=(CKR_CRYPTOKI_ALREADY_INITIALIZED,))
        self._initialized = code == 0  # finalise only what this object initialised
        try:
            slot = self._find_slot(module_path, token_label)
            self._check(self._lib.C_OpenSession(slot, CK_ULONG(CKF_SERIAL_SESSION), None, None, ctypes.byref(self._session)),
                        "C_OpenSession")
            encoded = pin.encode("utf-8")
            code = self._lib.C_Login(self._session, CK_ULONG(CKU_USER), encoded, CK_ULONG(len(encoded)))
            if code:  # the only login attempt: never retried
                problem = LOGIN_PROBLEMS.get(_LOGIN_CODES.get(code, ""))
                raise TokenError(problem.format(label=token_label) if problem else
                                 "cannot log in to token %r (CKR %#x)" % (token_label, code))
            self._key = self._find_private(label, key_id, token_label)
            self.key_type = self._ulong(self._key, CKA_KEY_TYPE)
            if self.key_type not in (CKK_EC, CKK_RSA):
                raise TokenError("key %r has type %#x; only EC and RSA keys are supported" % (label, self.key_type))
        except BaseException:
            self.close()
            raise

    def _check(self, code, call, allow=()):
        if code and code not in allow:
            raise TokenError("the PKCS#11 library failed in %s (CKR %#x): check the token's configuration" % (call, code))

    def _find_slot(self, module_path, token_label):
        count = CK_ULONG()
        self._check(self._lib.C_GetSlotList(1, None, ctypes.byref(count)), "C_GetSlotList")
        slots = (CK_ULONG * max(count.value, 1))()
        self._check(self._lib.C_GetSlotList(1, slots, ctypes.byref(count)), "C_GetSlotList")
        matches, labels = [], []
        for slot in slots[:count.value]:
            info = _TokenInfo()
            if self._lib.C_GetTokenInfo(CK_ULONG(slot), ctypes.byref(info)) or not info.flags & CKF_TOKEN_INITIALIZED:
                continue
            name = info.label.decode("utf-8", "replace").rstrip(" ")
            labels.append(name)
            if name == token_label:
                matches.append(slot)
        if len(matches) != 1:
            raise TokenError("%s labelled %r on %s (tokens present: %s): fix the token label" % (
                "no token" if not matches else "several tokens", token_label, module_path, sorted(labels) or "none"))
        return CK_ULONG(matches[0])

    def _find(self, values):
        template, _buffers = _template(values)
        self._check(self._lib.C_FindObjectsInit(self._session, template, CK_ULONG(len(values))), "C_FindObjectsInit")
        found, count = (CK_ULONG * 2)(), CK_ULONG()
        try:
            self._check(self._lib.C_FindObjects(self._session, found, CK_ULONG(2), ctypes.byref(count)), "C_FindObjects")
        finally:
            self._lib.C_FindObjectsFinal(self._session)
        return [CK_ULONG(handle) for handle in found[:count.value]]

    def _find_private(self, label, key_id, token_label):
        values = [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_LABEL, label.encode("utf-8"))]
        if key_id is not None:
            values.append((CKA_ID, key_id))
        found = self._find(values)
        if not found:
            raise TokenError("no private key labelled %r%s on token %r: create it with rolesanywhere.fleet.pkcs11_key"
                             % (label, "" if key_id is None else " with id %s" % key_id.hex(), token_label))
        if len(found) > 1:
            raise TokenError("several private keys are labelled %r on the token: give id to pick one, or remove the "
                             "duplicates" % label)
        return found[0]

    def _attribute(self, handle, kind) -> bytes:
        template, _buffers = _template([(kind, b"")])
        template[0].value = None
        self._check(self._lib.C_GetAttributeValue(self._session, handle, template, CK_ULONG(1)), "C_GetAttributeValue")
        buffer = ctypes.create_string_buffer(template[0].length)
        template[0].value = ctypes.addressof(buffer)
        self._check(self._lib.C_GetAttributeValue(self._session, handle, template, CK_ULONG(1)), "C_GetAttributeValue")
        return buffer.raw[:template[0].length]

    def _ulong(self, handle, kind) -> int:
        return CK_ULONG.from_buffer_copy(self._attribute(handle, kind)).value

    def public_key_material(self):
        """``("ec", curve, point)`` or ``("rsa", n, e)``, read from the token (never from private values)."""
        if self.key_type == CKK_RSA:
            return ("rsa", int.from_bytes(self._attribute(self._key, CKA_MODULUS), "big"),
                    int.from_bytes(self._attribute(self._key, CKA_PUBLIC_EXPONENT), "big"))
        key_id = self._attribute(self._key, CKA_ID)
        publics = self._find([(CKA_CLASS, CKO_PUBLIC_KEY), (CKA_LABEL, self.label.encode("utf-8")), (CKA_ID, key_id)])
        if not publics and key_id:
            publics = self._find([(CKA_CLASS, CKO_PUBLIC_KEY), (CKA_ID, key_id)])
        if len(publics) != 1:
            raise TokenError("EC key %r has no public key object on the token: recreate the key pair" % self.label)
        params = self._attribute(publics[0], CKA_EC_PARAMS)
        curve = _der.CURVES.get(params[2:] if params[:1] == b"\x06" else b"", ("unknown", 0))[0]
        return ("ec", curve, _der.unwrap_octet_string(self._attribute(publics[0], CKA_EC_POINT)))

    def sigv4_sign(self, data: bytes) -> bytes:
        """One SHA-256 signature: DER ECDSA (hashed here, CKM_ECDSA on the token) or CKM_SHA256_RSA_PKCS."""
        if self.key_type == CKK_EC:
            data, mechanism = _der.sha256(data).digest(), CKM_ECDSA
        else:
            mechanism = CKM_SHA256_RSA_PKCS
        spec = _Mechanism(mechanism, None, 0)
        self._check(self._lib.C_SignInit(self._session, ctypes.byref(spec), self._key), "C_SignInit")
        length = CK_ULONG(1024)
        signature = ctypes.create_string_buffer(length.value)
        self._check(self._lib.C_Sign(self._session, data, CK_ULONG(len(data)), signature, ctypes.byref(length)),
                    "C_Sign")
        raw = signature.raw[:length.value]
        return _der.encode_ecdsa_signature(raw) if self.key_type == CKK_EC else raw

    def close(self):
        if self._session.value:
            self._lib.C_CloseSession(self._session)  # logs the process out too
            self._session = CK_ULONG()
        if self._initialized:
            self._lib.C_Finalize(None)
            self._initialized = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
