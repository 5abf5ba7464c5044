# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Token access for rolesanywhere.fleet: one place for everything PKCS#11.

Pure Python (python-pkcs11 + cryptography, no Ansible): used by modules, the bundled signing helper
and tests alike. Rules this file enforces (see docs/tokens.md):

* tokens are selected by exact label, never by slot number;
* one login per process and token, and a rejected PIN is never retried (TPMs lock after 3 failures);
* every value is type-checked before python-pkcs11 sees it (wrong types crash the process);
* key pairs get complete templates: SENSITIVE, not EXTRACTABLE, read back and verified;
* private keys never leave the token: ``token_private_key`` returns cryptography key objects whose
  ``sign()`` runs on the token.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Optional

from ansible_collections.rolesanywhere.fleet.plugins.module_utils._pkcs11_names import (  # pylint: disable=unused-import  # re-exported
    TOKEN_LABEL_MAX_BYTES,
    check_key_label,
    check_str as _check_str,
    check_key_id as _check_key_id,
    check_token_label,
    parse_key_id,
    pkcs11_uri,
)
from ansible_collections.rolesanywhere.fleet.plugins.module_utils._token_signer import (
    LOGIN_PROBLEMS,
    TokenError,
    read_pin as _read_pin,
)

try:
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, TokenFlag
    from pkcs11.exceptions import PKCS11Error

    HAS_PKCS11 = True
    PKCS11_IMPORT_ERROR = None
except ImportError as exc:  # reported by the modules with missing_required_lib
    HAS_PKCS11 = False
    PKCS11_IMPORT_ERROR = exc

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
    _ECBase = ec.EllipticCurvePrivateKey
    _RSABase = rsa.RSAPrivateKey
except ImportError as exc:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = exc
    _ECBase = _RSABase = object

CURVES = ("secp256r1", "secp384r1")
RSA_SIZES = (2048, 3072, 4096)
MIN_RSA_SIZE = 2048
TPM2_LIBRARY_DESCRIPTION = "TPM2.0 Cryptoki"

# python-pkcs11 releases the GIL around every C call and SoftHSM runs without mutexes under
# C_Initialize(NULL): concurrent threads crash it. Every token operation of this module holds this lock.
TOKEN_LOCK = threading.RLock()


@dataclass
class TokenSpec:
    module_path: str
    token_label: str
    pin: Optional[str] = field(default=None, repr=False)
    pin_file: Optional[str] = None
    env: Dict[str, str] = field(default_factory=dict)


@dataclass
class KeyPair:
    """The private and public objects of one key pair on a token (public may be absent)."""

    private: object
    public: object
    label: str
    key_id: bytes
    key_type: str  # "ec" | "rsa"


# ---------------------------------------------------------------------------------------------------
# Validation (before python-pkcs11 is called: it segfaults on wrong types)


def _require_libraries():
    if not HAS_PKCS11:
        raise TokenError("the Python library python-pkcs11 is missing on this host: pip install python-pkcs11 (%s)"
                         % PKCS11_IMPORT_ERROR)
    if not HAS_CRYPTOGRAPHY:
        raise TokenError("the Python library cryptography is missing on this host: pip install cryptography (%s)"
                         % CRYPTOGRAPHY_IMPORT_ERROR)


def validate_spec(spec, need_pin=True):
    """Check a TokenSpec completely; raises TokenError naming the bad option and the fix."""
    if not isinstance(spec, TokenSpec):
        raise TokenError("expected a TokenSpec, got %s" % type(spec).__name__)
    if spec.module_path in (None, ""):
        raise TokenError("module_path is required: the path of the token's PKCS#11 library, e.g. "
                         "/usr/lib/softhsm/libsofthsm2.so or /usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so")
    _check_str("module_path", spec.module_path)
    if not os.path.isabs(spec.module_path):
        raise TokenError("module_path %r must be an absolute path to the PKCS#11 library" % spec.module_path)
    if not os.path.isfile(spec.module_path):
        raise TokenError("module_path %s does not exist: install the token software (role rolesanywhere.fleet.token) "
                         "or fix the path" % spec.module_path)
    check_token_label(spec.token_label)
    if not isinstance(spec.env, dict):
        raise TokenError("token env must be a mapping of variable names to strings, got %s" % type(spec.env).__name__)
    for key, value in spec.env.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TokenError("token env entries must be strings: %r: %r" % (key, type(value).__name__))
    if spec.pin is not None and spec.pin_file is not None:
        raise TokenError("give either pin or pin_file, not both")
    if spec.pin is not None:
        if not isinstance(spec.pin, str):
            raise TokenError("pin must be a string, got %s: quote it in YAML" % type(spec.pin).__name__)
    if spec.pin_file is not None:
        _check_str("pin_file", spec.pin_file)
    if need_pin and spec.pin is None and spec.pin_file is None:
        raise TokenError("a PIN is required for token %r: set pin (from vault) or pin_file (a 0600 file)"
                         % spec.token_label)


def read_pin(spec):
    """The user PIN from ``spec.pin`` or ``spec.pin_file`` (which must not be readable by group/others)."""
    return _read_pin(spec.pin, spec.pin_file, spec.token_label)


# ---------------------------------------------------------------------------------------------------
# Library and token


_loaded_env = {}  # module_path -> env (sorted items) in force when C_Initialize ran
_open_sessions = {}  # module_path -> number of open sessions of this module
_session_profiles = {}  # open session -> template profile of its library


def load_library(module_path, env=None):
    """Apply ``env`` (SOFTHSM2_CONF, TPM2_PKCS11_*) and load/initialise the library.

    Libraries read their configuration in C_Initialize: if this process already initialised
    ``module_path`` with other settings, it is re-initialised (only when no session is open).
    """
    _require_libraries()
    env = dict(env or {})
    wanted = tuple(sorted(env.items()))
    os.environ.update(env)
    with TOKEN_LOCK:
        try:
            # A library initialised elsewhere in this process (unknown settings) is re-initialised too.
            if module_path in pkcs11._loaded and _loaded_env.get(module_path) != wanted:
                if _open_sessions.get(module_path):
                    raise TokenError("cannot switch %s to other settings while a session is open" % module_path)
                lib = pkcs11.lib(module_path)
                lib.reinitialize()
            else:
                lib = pkcs11.lib(module_path)
        except PKCS11Error as exc:
            raise TokenError(
                "cannot initialise the PKCS#11 library %s (%s: %s). Check the library's configuration: for SoftHSM2 "
                "SOFTHSM2_CONF must name a readable config whose tokendir exists; for tpm2-pkcs11 "
                "TPM2_PKCS11_TCTI must reach a TPM or resource manager and TPM2_PKCS11_STORE must be writable"
                % (module_path, type(exc).__name__, exc)) from None
        _loaded_env[module_path] = wanted
        return lib


def _token_labels(lib):
    try:
        return sorted(t.label for t in lib.get_tokens() if t.flags & TokenFlag.TOKEN_INITIALIZED)
    except PKCS11Error:
        return []


def find_token(lib, token_label, module_path=""):
    check_token_label(token_label)
    with TOKEN_LOCK:
        try:
            return lib.get_token(token_label=token_label)
        except pkcs11.exceptions.NoSuchToken:
            raise TokenError(
                "no token labelled %r on %s (tokens present: %s). Fix token_label (exact match) or create the token "
                "with rolesanywhere.fleet.pkcs11_token" % (token_label, module_path, _token_labels(lib) or "none")
            ) from None
        except pkcs11.exceptions.MultipleTokensReturned:
            raise TokenError("several tokens are labelled %r on %s: relabel them so labels are unique"
                             % (token_label, module_path)) from None


def token_profile(lib):
    """Which key templates the library needs: ``tpm2`` for tpm2-pkcs11, else ``generic``."""
    if lib.library_description.strip() == TPM2_LIBRARY_DESCRIPTION:
        return "tpm2"
    return "generic"


def _login_error(exc, token_label):
    problem = LOGIN_PROBLEMS.get(type(exc).__name__)
    if problem:
        return TokenError(problem.format(label=token_label))
    return TokenError("cannot open a session on token %r (%s: %s)" % (token_label, type(exc).__name__, exc))


@contextmanager
def open_token_session(spec, rw=False):
    """Open one session on the token named by ``spec`` and log in with its PIN, exactly once.

    Keep one session per process and token: closing it logs out every session of the process.
    """
    validate_spec(spec)
    pin = read_pin(spec)
    lib = load_library(spec.module_path, spec.env)
    token = find_token(lib, spec.token_label, spec.module_path)
    with TOKEN_LOCK:
        try:
            session = token.open(rw=bool(rw), user_pin=pin)  # the only login attempt: never retried
        except PKCS11Error as exc:
            raise _login_error(exc, spec.token_label) from None
        _open_sessions[spec.module_path] = _open_sessions.get(spec.module_path, 0) + 1
        _session_profiles[session] = token_profile(lib)
    try:
        yield session
    finally:
        with TOKEN_LOCK:
            _open_sessions[spec.module_path] -= 1
            _session_profiles.pop(session, None)
            try:
                session.close()
            except PKCS11Error:
                pass  # the session is gone either way; the caller's own error matters more


def session_profile(session):
    """Template profile (``tpm2`` | ``generic``) of the library behind a session from open_token_session."""
    return _session_profiles.get(session, "generic")


def token_info(token):
    flags = token.flags
    return {
        "label": token.label,
        "serial": token.serial.decode("ascii", "replace").strip(),
        "manufacturer": token.manufacturer_id.strip(),
        "model": token.model.replace("\x00", "").strip(),
        "initialized": bool(flags & TokenFlag.TOKEN_INITIALIZED),
        "user_pin_initialized": bool(flags & TokenFlag.USER_PIN_INITIALIZED),
        "login_required": bool(flags & TokenFlag.LOGIN_REQUIRED),
    }


# ---------------------------------------------------------------------------------------------------
# Token initialisation (python-pkcs11 has no C_InitToken: call it through the library's function list)

_FUNCTION_LIST_HEAD = ["C_Initialize", "C_Finalize", "C_GetInfo", "C_GetFunctionList", "C_GetSlotList",
                       "C_GetSlotInfo", "C_GetTokenInfo", "C_GetMechanismList", "C_GetMechanismInfo", "C_InitToken"]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]


class _FunctionListHead(ctypes.Structure):
    _fields_ = [("version", _Version)] + [(name, ctypes.c_void_p) for name in _FUNCTION_LIST_HEAD]


_CKR_NAMES = {0xA0: "wrong SO PIN (CKR_PIN_INCORRECT)", 0xA4: "SO PIN locked (CKR_PIN_LOCKED)",
              0xA2: "SO PIN length out of range (CKR_PIN_LEN_RANGE)",
              0xB6: "a session is open on the token (CKR_SESSION_EXISTS)",
              0xE0: "no token in the slot (CKR_TOKEN_NOT_PRESENT)"}


def _c_init_token(module_path, slot_id, so_pin, token_label):
    funcs = ctypes.POINTER(_FunctionListHead)()
    library = ctypes.CDLL(module_path)  # same handle python-pkcs11 opened and initialised
    if library.C_GetFunctionList(ctypes.byref(funcs)) != 0:
        raise TokenError("C_GetFunctionList failed on %s" % module_path)
    init = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)(
        funcs.contents.C_InitToken)
    so_pin_bytes = so_pin.encode("utf-8")
    label_bytes = token_label.encode("utf-8").ljust(TOKEN_LABEL_MAX_BYTES, b" ")  # blank-padded, never NUL
    rv = init(slot_id, so_pin_bytes, len(so_pin_bytes), label_bytes)
    if rv != 0:
        raise TokenError("C_InitToken failed for token %r: %s" % (token_label, _CKR_NAMES.get(rv, "CKR 0x%x" % rv)))


def _check_new_pin(name, value):
    _check_str(name, value)
    if len(value) < 4:
        raise TokenError("%s must be at least 4 characters (most tokens refuse shorter PINs)" % name)
    return value


def describe_token(module_path, token_label, env=None):
    """token_info() of the token labelled ``token_label``, or None when there is none."""
    validate_spec(TokenSpec(module_path, token_label, env=dict(env or {})), need_pin=False)
    lib = load_library(module_path, env)
    with TOKEN_LOCK:
        try:
            return token_info(lib.get_token(token_label=token_label))
        except pkcs11.exceptions.NoSuchToken:
            return None
        except pkcs11.exceptions.MultipleTokensReturned:
            raise TokenError("several tokens are labelled %r on %s: relabel them so labels are unique"
                             % (token_label, module_path)) from None


def init_token(module_path, token_label, so_pin, user_pin, env=None):
    """Initialise a free slot as token ``token_label`` with ``so_pin`` and set its user PIN.

    Run it in a process that has not logged in to the library yet (a failed user login leaves a
    session that blocks the SO login). Returns token_info() of the new token.
    """
    validate_spec(TokenSpec(module_path, token_label, env=dict(env or {})), need_pin=False)
    _check_new_pin("so_pin", so_pin)
    _check_new_pin("user_pin", user_pin)
    lib = load_library(module_path, env)
    with TOKEN_LOCK:
        if describe_token(module_path, token_label, env) is not None:
            raise TokenError("token %r already exists on %s" % (token_label, module_path))
        free = [s for s in lib.get_slots(token_present=True)
                if not s.get_token().flags & TokenFlag.TOKEN_INITIALIZED]
        if not free:
            raise TokenError("no free slot on %s to initialise token %r: this library cannot create tokens; "
                             "initialise it with the vendor's tools, then use the module to check it"
                             % (module_path, token_label))
        _c_init_token(module_path, free[0].slot_id, so_pin, token_label)
        set_user_pin(module_path, token_label, so_pin, user_pin, env)
        return describe_token(module_path, token_label, env)


def set_user_pin(module_path, token_label, so_pin, user_pin, env=None):
    """Log in as security officer once and (re)set the user PIN."""
    _check_str("so_pin", so_pin)
    _check_new_pin("user_pin", user_pin)
    lib = load_library(module_path, env)
    token = find_token(lib, token_label, module_path)
    with TOKEN_LOCK:
        try:
            session = token.open(rw=True, so_pin=so_pin)
        except pkcs11.exceptions.PinIncorrect:
            raise TokenError("the SO PIN for token %r was rejected (tried once, not retried): fix so_pin"
                             % token_label) from None
        except PKCS11Error as exc:
            raise _login_error(exc, token_label) from None
        try:
            session.init_pin(user_pin)
        except PKCS11Error as exc:
            raise TokenError("cannot set the user PIN of token %r (%s)" % (token_label, type(exc).__name__)) from None
        finally:
            session.close()


# ---------------------------------------------------------------------------------------------------
# Keys


def _find_objects(session, object_class, label, key_id):
    attrs = {Attribute.CLASS: object_class, Attribute.LABEL: label}
    if key_id is not None:
        attrs[Attribute.ID] = key_id
    with TOKEN_LOCK:
        return list(session.get_objects(attrs))


def _key_type_name(obj):
    key_type = obj[Attribute.KEY_TYPE]
    if key_type == KeyType.EC:
        return "ec"
    if key_type == KeyType.RSA:
        return "rsa"
    return str(key_type)


def find_keypair(session, label, key_id=None):
    """The key pair labelled ``label`` (and with CKA_ID ``key_id`` if given), or None.

    Raises TokenError when several private keys match (the token allows duplicates; labels must be unique).
    """
    check_key_label(label)
    _check_key_id(key_id)
    privates = _find_objects(session, ObjectClass.PRIVATE_KEY, label, key_id)
    if not privates:
        return None
    if len(privates) > 1:
        raise TokenError("%d private keys are labelled %r on the token: give id to pick one, or remove the duplicates"
                         % (len(privates), label))
    private = privates[0]
    with TOKEN_LOCK:
        found_id = private[Attribute.ID]
        publics = _find_objects(session, ObjectClass.PUBLIC_KEY, label, found_id)
        if not publics and found_id:
            # Keys made by other tools may label only the private half; the shared CKA_ID still pairs them.
            publics = list(session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: found_id}))
        key_type = _key_type_name(private)
    return KeyPair(private=private, public=publics[0] if len(publics) == 1 else None,
                   label=label, key_id=found_id, key_type=key_type)


if HAS_CRYPTOGRAPHY:
    _CURVE_CLASSES = {"secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1, "secp521r1": ec.SECP521R1}


def _encode_curve(name):
    from pkcs11.util.ec import encode_named_curve_parameters
    return encode_named_curve_parameters(name)


def _decode_curve(ec_params):
    from asn1crypto.keys import ECDomainParameters
    params = ECDomainParameters.load(ec_params)
    if params.name != "named":
        raise TokenError("the token key uses explicit EC parameters; only named curves are supported")
    name = params.chosen.native
    if name not in _CURVE_CLASSES:
        raise TokenError("the token key uses curve %s; supported curves: %s" % (name, ", ".join(_CURVE_CLASSES)))
    return name


def _unwrap_ec_point(point, curve):
    """CKA_EC_POINT is a DER OCTET STRING on most tokens, the raw point on some."""
    coord = (curve.key_size + 7) // 8
    if len(point) in (1 + 2 * coord, 1 + coord) and point[0] in (2, 3, 4):
        return point
    from asn1crypto.core import OctetString
    return OctetString.load(point).native


def public_key_of(keypair):
    """The cryptography public key of a key pair, from token attributes (never from private values)."""
    with TOKEN_LOCK:
        if keypair.key_type == "ec":
            source = keypair.public
            if source is None:
                raise TokenError("EC key %r has no public key object on the token: recreate the key pair"
                                 % keypair.label)
            curve = _CURVE_CLASSES[_decode_curve(source[Attribute.EC_PARAMS])]()
            point = _unwrap_ec_point(source[Attribute.EC_POINT], curve)
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        if keypair.key_type == "rsa":
            source = keypair.public if keypair.public is not None else keypair.private  # n, e are public
            modulus = int.from_bytes(source[Attribute.MODULUS], "big")
            exponent = int.from_bytes(source[Attribute.PUBLIC_EXPONENT], "big")
            return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    raise TokenError("key %r has type %s; only EC and RSA keys are supported" % (keypair.label, keypair.key_type))


def describe_public_key(public_key):
    """``{"key_type", "curve"|"size"}`` of a cryptography public key."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {"key_type": "ec", "curve": public_key.curve.name, "size": public_key.key_size}
    return {"key_type": "rsa", "curve": None, "size": public_key.key_size}


def public_key_pem(public_key):
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


PROTECTION_ATTRIBUTES = {
    "sensitive": ("SENSITIVE", True),
    "extractable": ("EXTRACTABLE", False),
    "always_sensitive": ("ALWAYS_SENSITIVE", True),
    "never_extractable": ("NEVER_EXTRACTABLE", True),
    "local": ("LOCAL", True),
    "token": ("TOKEN", True),
    "private": ("PRIVATE", True),
}


def key_protection(private_key):
    """The private key's protection attributes as read back from the token (None when unsupported)."""
    result = {}
    with TOKEN_LOCK:
        for name, (attribute, _wanted) in PROTECTION_ATTRIBUTES.items():
            try:
                result[name] = bool(private_key[getattr(Attribute, attribute)])
            except PKCS11Error:
                result[name] = None
    return result


def protection_problems(protection):
    """Names of protection attributes whose read-back value is not the safe one."""
    return sorted("%s=%s" % (PROTECTION_ATTRIBUTES[name][0], value) for name, value in protection.items()
                  if value is not PROTECTION_ATTRIBUTES[name][1])


def _templates(profile):
    public = {Attribute.TOKEN: True, Attribute.PRIVATE: False, Attribute.VERIFY: True}
    private = {Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.SIGN: True,
               Attribute.EXTRACTABLE: False}
    if profile == "tpm2":
        # tpm2-pkcs11 refuses ENCRYPT/DECRYPT=False ("attr mismatch"): leave those to the token.
        public.update({Attribute.ENCRYPT: pkcs11.DEFAULT, Attribute.WRAP: pkcs11.DEFAULT})
        private.update({Attribute.DECRYPT: pkcs11.DEFAULT, Attribute.UNWRAP: pkcs11.DEFAULT,
                        Attribute.DERIVE: pkcs11.DEFAULT})
    else:
        public.update({Attribute.ENCRYPT: False, Attribute.WRAP: False})
        private.update({Attribute.DECRYPT: False, Attribute.UNWRAP: False, Attribute.DERIVE: False})
    return public, private


def check_key_request(key_type, curve=None, size=None):
    """Validate a key request; returns (key_type, curve, size) with the defaults filled in."""
    if key_type not in ("ec", "rsa"):
        raise TokenError("key_type must be 'ec' or 'rsa', got %r" % (key_type,))
    if key_type == "ec":
        curve = "secp256r1" if curve is None else curve
        if curve not in CURVES:
            raise TokenError("curve must be one of %s (IAM Roles Anywhere accepts P-256 and P-384), got %r"
                             % (", ".join(CURVES), curve))
        return key_type, curve, None
    size = 2048 if size is None else size
    if isinstance(size, bool) or not isinstance(size, int):
        raise TokenError("size must be an integer (2048, 3072 or 4096), got %s" % type(size).__name__)
    if size < MIN_RSA_SIZE:
        raise TokenError("RSA-%d is too weak: IAM Roles Anywhere and this collection need at least 2048 bits; "
                         "use size 2048, 3072 or 4096" % size)
    if size not in RSA_SIZES:
        raise TokenError("size must be one of 2048, 3072, 4096, got %d" % size)
    return key_type, None, size


def keypair_matches(keypair, key_type, curve=None, size=None):
    """True when an existing key pair has the requested type and curve/size."""
    key_type, curve, size = check_key_request(key_type, curve, size)
    actual = describe_public_key(public_key_of(keypair))
    if actual["key_type"] != key_type:
        return False
    return actual["curve"] == curve if key_type == "ec" else actual["size"] == size


def generate_keypair(session, label, key_type, curve=None, size=None, key_id=None, profile=None):
    """Generate a non-extractable key pair on the token (R/W session) and verify its protection.

    Without ``key_id`` the CKA_ID becomes the SHA-1 of the public point/modulus (the pkcs11-tool
    convention). The key pair is destroyed again if the token reports it extractable or not sensitive.
    """
    check_key_label(label)
    _check_key_id(key_id)
    key_type, curve, size = check_key_request(key_type, curve, size)
    profile = profile or session_profile(session)
    public_template, private_template = _templates(profile)
    id_value = key_id if key_id is not None else os.urandom(20)  # replaced by the public-key hash below
    with TOKEN_LOCK:
        try:
            if key_type == "ec":
                params = session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: _encode_curve(curve)}, local=True)
                public, private = params.generate_keypair(
                    id=id_value, label=label, store=True,
                    public_template=public_template, private_template=private_template)
            else:
                public, private = session.generate_keypair(
                    KeyType.RSA, size, id=id_value, label=label, store=True,
                    public_template=public_template, private_template=private_template)
        except pkcs11.exceptions.SessionReadOnly:
            raise TokenError("key generation needs a read/write session: open_token_session(spec, rw=True)") from None
        except PKCS11Error as exc:
            raise TokenError("the token refused to generate a %s key pair %r (%s: %s)"
                             % (key_type.upper(), label, type(exc).__name__, exc)) from None
    keypair = KeyPair(private=private, public=public, label=label, key_id=id_value, key_type=key_type)
    problems = protection_problems(key_protection(private))
    if problems:
        destroy_keypair(keypair)
        raise TokenError("the token created key %r with unsafe attributes (%s) and it was removed again: this token "
                         "cannot hold non-extractable keys" % (label, ", ".join(problems)))
    if key_id is None:
        keypair.key_id = _public_key_hash(public_key_of(keypair))
        with TOKEN_LOCK:
            try:
                private[Attribute.ID] = keypair.key_id
                public[Attribute.ID] = keypair.key_id
            except PKCS11Error as exc:
                destroy_keypair(keypair)
                raise TokenError("the token does not let set CKA_ID on key %r (%s): give id explicitly"
                                 % (label, type(exc).__name__)) from None
    return keypair


def _public_key_hash(public_key):
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        material = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    else:
        modulus = public_key.public_numbers().n
        material = modulus.to_bytes((modulus.bit_length() + 7) // 8, "big")
    return hashlib.sha1(material).digest()  # an identifier, not a security function


@contextmanager
def key_creation_lock(spec, wait=300.0, clock=None, sleep=None):
    """Serialise find-or-create of keys on one token between processes (two enrolments at once).

    The lock is an flock on the PIN file: only its owner and root can open it, so no other local user can hold
    it. Without a PIN file there is nothing private to lock and the body runs unlocked. A holder killed with
    SIGKILL releases the lock with its process.
    """
    import fcntl
    import time

    if spec.pin_file is None:
        yield
        return
    clock, sleep = clock or time.monotonic, sleep or time.sleep
    try:
        fd = os.open(spec.pin_file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise TokenError("cannot read pin_file %s: %s" % (spec.pin_file, exc.strerror)) from None
    try:
        deadline = clock() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock() > deadline:
                    raise TokenError("another run has been creating keys on token %r for %.0f s (it holds the lock "
                                     "on %s): let it finish, or stop it, then run again"
                                     % (spec.token_label, wait, spec.pin_file)) from None
                sleep(0.2)
        yield
    finally:
        os.close(fd)


def orphan_public_keys(session, label):
    """Public keys labelled ``label`` whose private half is missing (a run killed inside key generation)."""
    check_key_label(label)
    with TOKEN_LOCK:
        privates = {bytes(obj[Attribute.ID]) for obj in session.get_objects(
            {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label})}
        return [obj for obj in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: label})
                if bytes(obj[Attribute.ID]) not in privates]


def destroy_objects(objects):
    with TOKEN_LOCK:
        for obj in objects:
            obj.destroy()


def destroy_keypair(keypair):
    with TOKEN_LOCK:
        for obj in (keypair.private, keypair.public):
            if obj is not None:
                obj.destroy()


# ---------------------------------------------------------------------------------------------------
# Token-backed cryptography keys


_HASHES = {}  # name -> (PKCS#1 v1.5 mechanism, PSS mechanism, hash mechanism, MGF1 name)
if HAS_PKCS11:
    _HASHES = {name: (getattr(Mechanism, name.upper() + "_RSA_PKCS"),
                      getattr(Mechanism, name.upper() + "_RSA_PKCS_PSS"),
                      getattr(Mechanism, name.upper()), name.upper())
               for name in ("sha256", "sha384", "sha512")}

# DER DigestInfo prefixes (RFC 8017 §9.2) for signing an already computed digest with CKM_RSA_PKCS.
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def _hash_name(algorithm):
    name = algorithm.name
    if name not in _HASHES:
        raise TokenError("token keys sign with SHA-256, SHA-384 or SHA-512 only, not %s"
                         % name.upper().replace("SHA", "SHA-").replace("--", "-"))
    return name


class _TokenKeyMixin:
    """Shared behaviour: the key stays on the token; copies are the same handle."""

    def __init__(self, keypair, public_key):
        self._keypair = keypair
        self._public_key = public_key

    label = property(lambda self: self._keypair.label)
    key_id = property(lambda self: self._keypair.key_id)

    def public_key(self):
        return self._public_key

    @property
    def key_size(self):
        return self._public_key.key_size

    def _refuse(self, *_args, **_kwargs):
        raise TokenError("the private key %r is on the token and cannot be exported or used for this operation"
                         % self._keypair.label)

    private_numbers = private_bytes = _refuse

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def _token_sign(self, data, mechanism, mechanism_param=None):
        with TOKEN_LOCK:
            try:
                return self._keypair.private.sign(data, mechanism=mechanism, mechanism_param=mechanism_param)
            except PKCS11Error as exc:
                raise TokenError("the token failed to sign with key %r (%s: %s)"
                                 % (self._keypair.label, type(exc).__name__, exc)) from None


class TokenECKey(_TokenKeyMixin, _ECBase):
    """An EC private key on a token: hash on the host, CKM_ECDSA on the token, DER signature."""

    @property
    def curve(self):
        return self._public_key.curve

    exchange = _TokenKeyMixin._refuse

    def sign(self, data, signature_algorithm):
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise TokenError("EC token keys sign with ECDSA only")
        algorithm = signature_algorithm.algorithm
        if isinstance(algorithm, utils.Prehashed):
            _hash_name(algorithm._algorithm)
            digest = data
        else:
            _hash_name(algorithm)
            hasher = hashes.Hash(algorithm)
            hasher.update(data)
            digest = hasher.finalize()
        raw = self._token_sign(digest, Mechanism.ECDSA)
        half = len(raw) // 2
        return utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))


class TokenRSAKey(_TokenKeyMixin, _RSABase):
    """An RSA private key on a token: CKM_SHAxxx_RSA_PKCS (PKCS#1 v1.5), or PSS when the caller asks."""

    decrypt = _TokenKeyMixin._refuse

    def sign(self, data, pad, algorithm):
        prehashed = isinstance(algorithm, utils.Prehashed)
        name = _hash_name(algorithm._algorithm if prehashed else algorithm)
        v15, pss, hash_mech, mgf_name = _HASHES[name]
        if isinstance(pad, padding.PKCS1v15):
            if prehashed:
                return self._token_sign(_DIGEST_INFO[name] + data, Mechanism.RSA_PKCS)
            return self._token_sign(data, v15)
        if isinstance(pad, padding.PSS):
            digest_size = (algorithm._algorithm if prehashed else algorithm).digest_size
            salt = pad._salt_length
            if isinstance(salt, padding._MaxLength):
                salt = (self.key_size + 7) // 8 - digest_size - 2
            elif isinstance(salt, padding._DigestLength):
                salt = digest_size
            elif not isinstance(salt, int):
                raise TokenError("PSS salt length must be an integer, PSS.MAX_LENGTH or PSS.DIGEST_LENGTH")
            if pad._mgf._algorithm.name != name:
                raise TokenError("PSS on a token needs the MGF1 hash to equal the signature hash")
            params = (hash_mech, getattr(pkcs11.MGF, mgf_name), salt)
            if prehashed:
                return self._token_sign(data, Mechanism.RSA_PKCS_PSS, params)
            return self._token_sign(data, pss, params)
        raise TokenError("RSA token keys sign with PKCS1v15 or PSS padding only")


def token_key(keypair):
    """Wrap a found key pair as a cryptography private key that signs on the token."""
    public_key = public_key_of(keypair)
    if keypair.key_type == "ec":
        return TokenECKey(keypair, public_key)
    return TokenRSAKey(keypair, public_key)


def token_private_key(session, label, key_id=None):
    """The key pair ``label`` (/``key_id``) as a cryptography EC/RSA private key; ``sign()`` runs on the token.

    The key is usable while ``session`` stays open.
    """
    keypair = find_keypair(session, label, key_id)
    if keypair is None:
        raise TokenError("no private key labelled %r%s on token %r: create it with rolesanywhere.fleet.pkcs11_key"
                         % (label, "" if key_id is None else " with id %s" % key_id.hex(), session.token.label))
    return token_key(keypair)


def default_digest(public_key):
    """The conventional signature hash for a key: SHA-384 for P-384, SHA-256 otherwise."""
    if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.key_size >= 384:
        return "sha384"
    return "sha256"


# ---------------------------------------------------------------------------------------------------
# Certificates next to keys


def find_certificates(session, label, key_id=None):
    """DER of the X.509 certificate objects labelled ``label`` (and ``key_id``)."""
    check_key_label(label)
    _check_key_id(key_id)
    with TOKEN_LOCK:
        return [obj[Attribute.VALUE] for obj in _find_objects(session, ObjectClass.CERTIFICATE, label, key_id)]


def store_certificate(session, certificate, label, key_id):
    """Store ``certificate`` (cryptography Certificate or DER) as the certificate object next to a key.

    Replaces other certificates with the same label and id. Returns True if the token changed.
    """
    from pkcs11.util.x509 import decode_x509_certificate
    check_key_label(label)
    if not isinstance(key_id, bytes) or not key_id:
        raise TokenError("store_certificate needs the key's CKA_ID as non-empty bytes")
    der = certificate if isinstance(certificate, bytes) else certificate.public_bytes(serialization.Encoding.DER)
    with TOKEN_LOCK:
        existing = _find_objects(session, ObjectClass.CERTIFICATE, label, key_id)
        if len(existing) == 1 and existing[0][Attribute.VALUE] == der:
            return False
        attrs = decode_x509_certificate(der)
        attrs.update({Attribute.TOKEN: True, Attribute.PRIVATE: False, Attribute.LABEL: label, Attribute.ID: key_id})
        try:
            session.create_object(attrs)
        except PKCS11Error as exc:
            raise TokenError("cannot store the certificate for %r on the token (%s)" % (label, type(exc).__name__)) \
                from None
        for obj in existing:
            obj.destroy()
    return True
