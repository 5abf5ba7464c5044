# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bundled signing helper: a drop-in for AWS's ``aws_signing_helper`` on hosts its binary can't serve.

Subcommands ``credential-process``, ``update``, ``serve`` and ``version`` take aws_signing_helper's flags and
print what it prints (credential_process JSON with the same key order and no trailing newline; every error is
one ``YYYY/MM/DD HH:MM:SS message`` line on stderr and exit 1). Beyond the Go helper:

- ``pkcs11:`` URIs may carry ``?pin-source=file:/path`` (RFC 7512) instead of ``?pin-value=``;
- ``--cache`` / ``--cache-dir``: credentials kept in a 0600 file and reused until 15 minutes before expiry
  (botocore refuses credentials with less than 10 minutes left);
- ``serve`` re-reads the certificate at each refresh and answers 500, never 200 with empty credentials;
- ``update`` writes the credentials file atomically and retries transient failures with backoff.

Pure Python, and started once per credential refresh, so it imports as little as it can: a
``credential-process`` command line is read without argparse (argparse only for help, errors and the other
subcommands); a cache hit reads one file with os alone; fetching imports the signer, cryptography only for
a file key, and for a token key with a certificate file the ctypes PKCS#11 signer instead of python-pkcs11.
"""
from __future__ import annotations

import datetime
import os
import sys
import time

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _der

VERSION = "0.1.0"
REFRESH_MARGIN = datetime.timedelta(minutes=15)
DEFAULT_PKCS11_LIB = "p11-kit-proxy.so"
SIGNER = "ansible_collections.rolesanywhere.fleet.plugins.module_utils._sigv4x509"
PKCS11 = "ansible_collections.rolesanywhere.fleet.plugins.module_utils._pkcs11"
TOKEN_SIGNER = "ansible_collections.rolesanywhere.fleet.plugins.module_utils._token_signer"


class HelperError(Exception):
    """An error whose message is shown as is (one line, never a secret)."""


def log(message) -> None:
    line = mask_pin(" ".join(str(message).split()))  # no PIN in the journal, whatever an error quotes
    sys.stderr.write(f"{datetime.datetime.now():%Y/%m/%d %H:%M:%S} {line}\n")
    sys.stderr.flush()


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


# ---------------------------------------------------------------- PKCS#11 URIs (RFC 7512)

class Pkcs11Uri:
    """Path and query attributes of a parsed ``pkcs11:`` URI, percent-decoded."""

    def __init__(self):
        self.path = {}
        self.query = {}

    @property
    def token(self):
        return self.path.get("token")

    @property
    def label(self):
        return self.path.get("object")

    @property
    def key_id(self):
        value = self.path.get("id")
        return value.encode("latin-1") if value is not None else None

    def pin_file(self):
        source = self.query.get("pin-source")
        if source is None:
            return None
        if not source.startswith("file:"):
            raise HelperError(f"pin-source {source!r} is not supported: use pin-source=file:/path/to/pin")
        path = source[len("file:"):]
        if path.startswith("//"):
            # file://host/path: only the local host is meaningful here
            host, _sep, rest = path[2:].partition("/")
            if host not in ("", "localhost"):
                raise HelperError(f"pin-source {source!r} names a remote host: use file:/path/to/pin")
            path = "/" + rest
        return path


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def unquote(text: str, encoding: str = "utf-8") -> str:
    """urllib.parse.unquote (its import costs a token key's cold start more than the URI it decodes)."""
    pieces = text.split("%")
    decoded, pending = [pieces[0]], bytearray()
    for piece in pieces[1:]:
        if len(piece) >= 2 and _HEX_DIGITS.issuperset(piece[:2]):
            pending.append(int(piece[:2], 16))
            piece = piece[2:]
        else:
            piece = "%" + piece
        if piece:
            decoded += [pending.decode(encoding, "replace"), piece]
            pending.clear()
    decoded.append(pending.decode(encoding, "replace"))
    return "".join(decoded)


def parse_pkcs11_uri(uri: str) -> Pkcs11Uri:
    if not uri.startswith("pkcs11:"):
        raise HelperError(f"{uri!r} is not a pkcs11: URI")
    body = uri[len("pkcs11:"):]
    path_part, _sep, query_part = body.partition("?")
    parsed = Pkcs11Uri()
    for target, text, separator in ((parsed.path, path_part, ";"), (parsed.query, query_part, "&")):
        for item in filter(None, text.split(separator)):
            name, equals, value = item.partition("=")
            if not equals:
                raise HelperError(f"pkcs11 URI attribute {name!r} has no value: write name=value")
            # Path values are raw bytes after percent-decoding (id=%01); latin-1 keeps them one to one.
            target[unquote(name)] = unquote(value, encoding="latin-1" if name == "id" else "utf-8")
    if "pin-value" in parsed.path:
        raise HelperError("pin-value belongs in the URI query: write pkcs11:token=...;object=...?pin-value=...")
    if "pin-value" in parsed.query and "pin-source" in parsed.query:
        raise HelperError("the pkcs11 URI has both pin-value and pin-source: keep one")
    return parsed


def redact_uri(uri: str) -> str:
    """The URI without its pin-value (for cache keys and messages)."""
    if not uri.startswith("pkcs11:") or "?" not in uri:
        return uri
    head, _sep, query = uri.partition("?")
    kept = [item for item in query.split("&") if not item.startswith("pin-value=")]
    return head + ("?" + "&".join(kept) if kept else "")


# ---------------------------------------------------------------- command line

# The flags every fetching subcommand takes: (flag, default, help). A bool default is a switch; None marks
# aws_signing_helper flags the bundled helper refuses (validate() says why).
COMMON_FLAGS = (
    ("--certificate", "", "PEM certificate file (or a pkcs11: URI of a certificate object)"),
    ("--private-key", "", "PEM/PKCS#8 key file or pkcs11: URI (default: $RA_PRIVATE_KEY, else --certificate); a URI "
                          "with a PIN belongs in RA_PRIVATE_KEY, never on the command line of a service"),
    ("--intermediates", "", "PEM bundle of intermediate CA certificates"),
    ("--role-arn", "", None),
    ("--profile-arn", "", None),
    ("--trust-anchor-arn", "", None),
    ("--session-duration", 3600, None),
    ("--region", "", None),
    ("--endpoint", "", None),
    ("--no-verify-ssl", False, None),
    ("--with-proxy", False, "honour HTTPS_PROXY/HTTP_PROXY/NO_PROXY"),
    ("--debug", False, "log what is signed (never credentials) to stderr"),
    ("--pkcs11-lib", "", f"PKCS#11 module (default {DEFAULT_PKCS11_LIB})"),
    ("--reuse-pin", False, "accepted for compatibility; the user PIN is reused"),
    ("--role-session-name", "", None),
    ("--pkcs8-password", "", None),
    ("--ca-bundle", "", "CA bundle to verify the endpoint (default: system store, SSL_CERT_FILE)"),
    ("--cache", False, "reuse credentials from a private cache until 15 min before expiry"),
    ("--cache-dir", "", "cache directory (implies --cache; default ~/.cache/rolesanywhere-fleet)"),
)
UNSUPPORTED_FLAGS = (("--cert-selector", None), ("--system-store-name", None), ("--tpm-key-password", None),
                     ("--no-tpm-key-password", False), ("--use-latest-expiring-certificate", False))


def _attribute(flag: str) -> str:
    return flag[2:].replace("-", "_")


class Options:
    """Parsed flags, as argparse's Namespace has them."""

    def __init__(self, **values):
        self.__dict__.update(values)


def parse_credential_process(argv):
    """Options for a plain ``credential-process`` command line, or None for anything argparse must judge
    (help, an unknown or abbreviated flag, a missing or odd value, another subcommand)."""
    if not argv or argv[0] != "credential-process":
        return None
    values = {_attribute(flag): default for flag, default, _help in COMMON_FLAGS}
    values.update((_attribute(flag), default) for flag, default in UNSUPPORTED_FLAGS)
    kinds = {flag: type(default) for flag, default, _help in COMMON_FLAGS}
    index = 1
    while index < len(argv):
        flag, equals, value = argv[index].partition("=")
        kind = kinds.get(flag)
        if kind is None or (kind is bool and equals):
            return None
        if kind is not bool and not equals:
            index += 1
            if index == len(argv) or argv[index].startswith("-"):
                return None
            value = argv[index]
        try:
            values[_attribute(flag)] = True if kind is bool else kind(value)
        except ValueError:
            return None
        index += 1
    return Options(command="credential-process", **values)


def _add_common(parser):
    import argparse

    for flag, default, text in COMMON_FLAGS:
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=text)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=text)
    for flag, default in UNSUPPORTED_FLAGS:
        if default is None:
            parser.add_argument(flag, default=None, help=argparse.SUPPRESS)
        else:
            parser.add_argument(flag, action="store_true", help=argparse.SUPPRESS)


def build_parser():
    import argparse

    class _Parser(argparse.ArgumentParser):
        """cobra-like: a bad flag prints the error and the usage, and exits 1 (never 2)."""

        def error(self, message):
            self.exit(1, f"Error: {message}\n{self.format_usage()}")

    parser = _Parser(prog="rolesanywhere-credential-helper", description=__doc__.split("\n", maxsplit=1)[0])
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    process = commands.add_parser("credential-process", help="print credentials for the SDK credential_process")
    _add_common(process)
    update = commands.add_parser("update", help="keep a profile in the shared credentials file fresh")
    _add_common(update)
    update.add_argument("--profile", default="default")
    update.add_argument("--once", action="store_true")
    serve = commands.add_parser("serve", help="serve credentials on an IMDSv2-compatible endpoint on 127.0.0.1")
    _add_common(serve)
    serve.add_argument("--port", type=int, default=9911)
    serve.add_argument("--hop-limit", type=int, default=64)
    commands.add_parser("version", help="print the version")
    return parser


def validate(opts) -> None:
    opts.private_key = opts.private_key or os.environ.get("RA_PRIVATE_KEY", "")
    if opts.cert_selector is not None or opts.system_store_name is not None or opts.use_latest_expiring_certificate:
        raise HelperError("unable to use cert store signer on linux: pass --certificate and --private-key")
    if opts.tpm_key_password is not None or opts.no_tpm_key_password:
        raise HelperError("TPM key files are not supported by the bundled helper: use a tpm2-pkcs11 pkcs11: URI")
    if not opts.certificate:
        raise HelperError("--certificate is required: pass the PEM certificate file")
    for flag in ("trust_anchor_arn", "profile_arn", "role_arn"):
        if not getattr(opts, flag):
            raise HelperError(f"--{flag.replace('_', '-')} is required")
    if opts.certificate.startswith("pkcs11:") and opts.private_key and not opts.private_key.startswith("pkcs11:"):
        raise HelperError("undefined certificate value: a certificate on the token needs its key on the token too")


# ---------------------------------------------------------------- fetching credentials

def resolve_library(name: str) -> str:
    """An absolute PKCS#11 module path; a bare name (``p11-kit-proxy.so``) is looked up like dlopen would."""
    if os.path.isabs(name):
        return name
    import sysconfig

    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    directories = [f"/usr/lib/{multiarch}", f"/usr/lib/{multiarch}/pkcs11", "/usr/lib64", "/usr/lib64/pkcs11",
                   "/usr/lib", "/usr/lib/pkcs11", "/usr/local/lib"]
    for directory in directories:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    raise HelperError(f"PKCS#11 library {name} not found: pass --pkcs11-lib with the module's absolute path")


def _token_options(opts, uri: Pkcs11Uri) -> dict:
    """The token a key URI names: module_path, token_label, pin, pin_file."""
    if not uri.token:
        raise HelperError("the pkcs11 URI has no token= attribute: add token=<label> so one token is selected")
    if not uri.label:
        raise HelperError("the pkcs11 URI has no object= attribute: add object=<key label>")
    pin_file = uri.pin_file()
    pin = uri.query.get("pin-value")
    if pin is None and pin_file is None:
        raise HelperError("one matching slot, but no user PIN provided: add ?pin-value= or ?pin-source=file: to the URI")
    module_path = resolve_library(opts.pkcs11_lib or uri.query.get("module-path") or DEFAULT_PKCS11_LIB)
    if not os.path.isfile(module_path):
        raise HelperError(f"PKCS#11 library {module_path} does not exist: install the token software or fix --pkcs11-lib")
    return {"module_path": module_path, "token_label": uri.token, "pin": pin, "pin_file": pin_file}


def _token_certificate(pkcs11_utils, session, cert_ref):
    uri = parse_pkcs11_uri(cert_ref)
    if not uri.label:
        raise HelperError("the certificate's pkcs11 URI has no object= attribute: add object=<certificate label>")
    found = pkcs11_utils.find_certificates(session, uri.label, uri.key_id)
    if len(found) != 1:
        raise HelperError(f"{'no' if not found else 'multiple'} matching certificates for {redact_uri(cert_ref)} on "
                          "the token: pass the certificate as a PEM file with --certificate")
    return _der.Certificate(found[0])


class _LibraryChatterSilenced:
    """Send file descriptor 2 to /dev/null while a PKCS#11 library runs (tpm2-pkcs11 prints its own ERROR lines
    on a wrong PIN), so the helper's one-line error stays the only output. ``--debug`` keeps the chatter."""

    def __init__(self, enabled):
        self._enabled = enabled
        self._saved = None

    def __enter__(self):
        if self._enabled:
            sys.stderr.flush()
            self._saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        return self

    def __exit__(self, *exc):
        if self._saved is not None:
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._saved = None
        return False


def fetch_session(opts):
    """One CreateSession call; the certificate, chain and key are read afresh every time."""
    from importlib import import_module

    signer = import_module(SIGNER)
    chain = signer.load_chain_file(opts.intermediates) if opts.intermediates else []
    key_ref = opts.private_key or opts.certificate

    def call(key, certificate):
        signer.check_validity(certificate)
        signer.check_key_matches(key, certificate)
        if opts.debug:
            log(f"signing with certificate serial {signer.as_certificate(certificate).serial_number} "
                f"({signer.certificate_subject(certificate)})")
        return signer.create_session(
            key,
            certificate,
            trust_anchor_arn=opts.trust_anchor_arn,
            profile_arn=opts.profile_arn,
            role_arn=opts.role_arn,
            region=opts.region or None,
            endpoint=os.environ.get("AWS_ENDPOINT_URL_ROLESANYWHERE") or opts.endpoint or None,
            chain=chain,
            duration_seconds=opts.session_duration,
            role_session_name=opts.role_session_name or None,
            ca_bundle=opts.ca_bundle or None,
            verify=not opts.no_verify_ssl,
            with_proxy=opts.with_proxy,
        )

    if key_ref.startswith("pkcs11:"):
        uri = parse_pkcs11_uri(key_ref)
        token = _token_options(opts, uri)
        if not opts.certificate.startswith("pkcs11:"):
            certificate = signer.load_certificate_file(opts.certificate)
            with _LibraryChatterSilenced(not opts.debug), import_module(TOKEN_SIGNER).TokenKey(
                    label=uri.label, key_id=uri.key_id, **token) as key:
                return call(key, certificate)
        # A certificate object on the token: python-pkcs11 finds it (the rarer, slower path).
        pkcs11_utils = import_module(PKCS11)
        with _LibraryChatterSilenced(not opts.debug), pkcs11_utils.open_token_session(
                pkcs11_utils.TokenSpec(**token), rw=False) as session:
            certificate = _token_certificate(pkcs11_utils, session, opts.certificate)
            key = pkcs11_utils.token_private_key(session, uri.label, uri.key_id)
            return call(key, certificate)
    certificate = signer.load_certificate_file(opts.certificate)
    key = signer.load_private_key_file(key_ref, opts.pkcs8_password or None)
    return call(key, certificate)


def _known_errors():
    """Error types whose messages are safe and complete; anything else is reported by type and message."""
    from importlib import import_module

    errors = [HelperError, import_module(SIGNER).RolesAnywhereError]
    token_module = sys.modules.get(TOKEN_SIGNER)  # only loaded (and only relevant) when a token key was used
    if token_module is not None:
        errors.append(token_module.TokenError)
    return tuple(errors)


# ---------------------------------------------------------------- the cache

def _cache_dir(opts) -> str:
    if opts.cache_dir:
        return opts.cache_dir
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rolesanywhere-fleet")


def _file_digest(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return _der.sha256(fh.read()).hexdigest()
    except OSError:
        return "unreadable"


def cache_path(opts) -> str:
    """One file per request: a rotated certificate (new bytes) or any changed flag gets a new entry."""
    identity = [
        opts.certificate,
        _file_digest(opts.certificate) if not opts.certificate.startswith("pkcs11:") else "",
        redact_uri(opts.private_key),
        opts.intermediates,
        _file_digest(opts.intermediates) if opts.intermediates else "",
        opts.trust_anchor_arn,
        opts.profile_arn,
        opts.role_arn,
        opts.region,
        os.environ.get("AWS_ENDPOINT_URL_ROLESANYWHERE") or opts.endpoint,
        opts.session_duration,
        opts.role_session_name,
    ]
    digest = _der.sha256("\0".join(str(part) for part in identity).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return os.path.join(_cache_dir(opts), f"{digest}.json")


def _private_dir(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if os.path.islink(path):  # a planted link to someone else's directory is not our cache
        raise HelperError(f"cache directory {path} is a symbolic link: remove it or choose another --cache-dir")
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise HelperError(
            f"cache directory {path} is not private (mode {info.st_mode & 0o777:o}, owner uid {info.st_uid}): "
            "chmod 700 it as its owner or choose another --cache-dir"
        )


def read_cache(path: str):
    """The cached credential_process document if it is ours, private and fresh enough, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if info.st_uid != os.geteuid() or info.st_mode & 0o077:
            return None
        text = fh.read().decode("utf-8", "replace")
    # The helper wrote this compact document itself; reading one field needs no json (whose import costs more).
    marker = '"Expiration":"'
    start = text.rfind(marker) + len(marker)
    end = text.find('"', start)
    if start < len(marker) or end < 0 or not text.startswith("{") or not text.endswith("}"):
        return None
    try:
        expires = datetime.datetime.fromisoformat(text[start:end].replace("Z", "+00:00"))
    except ValueError:
        return None
    if expires.tzinfo is None:
        return None
    if expires - utcnow() <= REFRESH_MARGIN:
        return None
    return text


def atomic_write(path: str, data: str, mode: int = 0o600, owner: tuple | None = None) -> None:
    """Write to a temporary file in the same directory, fsync, then rename: readers never see a partial file.

    ``owner`` is ``(uid, gid)`` to give the file before it appears (needs root).
    """
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            if owner is not None:
                os.fchown(fh.fileno(), *owner)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


# ---------------------------------------------------------------- wiring credential_process

PIN_MASK = "********"


def mask_pin(text: str) -> str:
    """Replace every ``pin-value=...`` in text (URIs, config files, diffs) by a mask."""
    import re

    return re.sub(r"(pin-value=)[^&'\"\s]*", lambda m: m.group(1) + PIN_MASK, text)


def credential_process_command(
    impl: str,
    helper: str,
    *,
    certificate: str,
    private_key: str,
    trust_anchor_arn: str,
    profile_arn: str,
    role_arn: str,
    intermediates: str | None = None,
    region: str | None = None,
    endpoint: str | None = None,
    session_duration: int | None = None,
    role_session_name: str | None = None,
    pkcs11_lib: str | None = None,
    ca_bundle: str | None = None,
    cache: bool = False,
    cache_dir: str | None = None,
    env: dict | None = None,
) -> str:
    """One physical line for ``credential_process`` (multi-line values lose arguments: helper issue #151).

    ``impl`` is ``aws`` (AWS's aws_signing_helper) or ``python`` (the bundled helper). Environment settings
    (a token's SOFTHSM2_CONF, AWS's helper trusting ``ca_bundle`` through SSL_CERT_FILE) go through ``env``,
    because SDKs run the command without a shell.
    """
    import shlex

    if impl not in ("aws", "python"):
        raise HelperError(f"impl must be aws or python, not {impl!r}")
    if private_key.startswith("pkcs11:"):
        uri = parse_pkcs11_uri(private_key)
        if not uri.token:
            raise HelperError("the key's pkcs11 URI has no token= attribute: add token=<label>")
        if impl == "aws" and "pin-source" in uri.query:
            raise HelperError("AWS's aws_signing_helper ignores pin-source: give the PIN (pin-value) or use impl python")
    if impl == "aws" and (cache or cache_dir):
        raise HelperError("AWS's aws_signing_helper has no credential cache: drop cache or use impl python")
    environment = dict(env or {})
    args = ["credential-process", "--certificate", certificate, "--private-key", private_key]
    optional = [("--intermediates", intermediates), ("--trust-anchor-arn", trust_anchor_arn),
                ("--profile-arn", profile_arn), ("--role-arn", role_arn), ("--region", region),
                ("--endpoint", endpoint), ("--role-session-name", role_session_name), ("--pkcs11-lib", pkcs11_lib)]
    if session_duration:
        optional.append(("--session-duration", str(session_duration)))
    if ca_bundle:
        if impl == "aws":
            environment["SSL_CERT_FILE"] = ca_bundle
        else:
            optional.append(("--ca-bundle", ca_bundle))
    if cache_dir:
        optional.append(("--cache-dir", cache_dir))
    for flag, value in optional:
        if value:
            args += [flag, str(value)]
    if cache and not cache_dir:
        args.append("--cache")
    words = [helper] + args
    if environment:
        words = ["/usr/bin/env"] + [f"{name}={value}" for name, value in sorted(environment.items())] + words
    line = " ".join(shlex.quote(word) for word in words)
    if "\n" in line or "\r" in line:
        raise HelperError("credential_process values must not contain line breaks")
    return line


# ---------------------------------------------------------------- subcommands

def credential_process(opts) -> int:
    cached = None
    if opts.cache or opts.cache_dir:
        path = cache_path(opts)
        cached = read_cache(path)
        if cached is not None:
            sys.stdout.write(cached)
            return 0
    document = fetch_session(opts).credential_process_json()
    if opts.cache or opts.cache_dir:
        _private_dir(os.path.dirname(path))
        atomic_write(path, document)
    sys.stdout.write(document)
    return 0


def _credentials_file() -> str:
    return os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(os.path.expanduser("~"), ".aws", "credentials")


CREDENTIAL_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")


def _section_bounds(lines, header):
    start = next((i for i, line in enumerate(lines) if line.strip() == header), None)
    if start is None:
        return None, None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    return start, end


def set_section_values(text: str, header: str, values: dict) -> str:
    """Set ``name = value`` lines in the INI section ``header`` (e.g. ``[profile ra]``), adding it if missing.

    Every other line, comment and section is kept; a replaced key loses its indented continuation lines.
    """
    lines = text.splitlines()
    start, end = _section_bounds(lines, header)
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ([""] if lines else []) + [header]
        start = end = len(lines) - 1
        end += 1
    missing = dict(values)
    section, dropping = [], False
    for line in lines[start + 1:end]:
        if dropping and line[:1] in (" ", "\t") and line.strip():
            continue
        dropping = False
        name = line.split("=", 1)[0].strip() if "=" in line and line[:1] not in (" ", "\t", "#", ";") else None
        if name in values:
            dropping = True
            if name in missing:
                section.append(f"{name} = {missing.pop(name)}")
            continue
        section.append(line)
    blank_tail = []
    while section and not section[-1].strip():
        blank_tail.append(section.pop())
    section += [f"{name} = {value}" for name, value in missing.items()] + blank_tail
    if end < len(lines) and not blank_tail:
        section.append("")
    return "\n".join(lines[: start + 1] + section + lines[end:]) + "\n"


def remove_section(text: str, header: str) -> str:
    lines = text.splitlines()
    start, end = _section_bounds(lines, header)
    if start is None:
        return text
    kept = lines[:start] + lines[end:]
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept) + "\n" if kept else ""


def write_credentials(path: str, profile: str, session) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        text = ""
    values = dict(zip(CREDENTIAL_KEYS, (session.access_key_id, session.secret_access_key, session.session_token)))
    atomic_write(path, set_section_values(text, f"[{profile}]", values))


def _transient(exc) -> bool:
    from importlib import import_module

    signer = import_module(SIGNER)
    if isinstance(exc, signer.TransportError):
        return True
    return isinstance(exc, signer.ServiceError) and (exc.status >= 500 or exc.status == 429)


def fetch_with_backoff(opts, attempts=None, first_delay=1.0, max_delay=300.0, sleep=time.sleep):
    """Retry endpoint outages and throttling (never a PIN or a certificate problem) with doubling delays."""
    delay, attempt = first_delay, 0
    while True:
        attempt += 1
        try:
            return fetch_session(opts)
        except Exception as exc:  # noqa: BLE001 - classified right below
            if not _transient(exc) or (attempts is not None and attempt >= attempts):
                raise
            log(f"{exc}; retrying in {delay:.0f}s")
            sleep(delay)
            delay = min(delay * 2, max_delay)


def update(opts) -> int:
    path = _credentials_file()
    while True:
        session = fetch_with_backoff(opts, attempts=3 if opts.once else None)
        write_credentials(path, opts.profile, session)
        log(f"credentials for profile {opts.profile} written to {path}, expire at {session.expiration}")
        if opts.once:
            return 0
        wait = (session.expiration_datetime() - REFRESH_MARGIN - utcnow()).total_seconds()
        time.sleep(max(wait, 60))


class CredentialSource:
    """Credentials for ``serve``: refreshed lazily within REFRESH_MARGIN of expiry, certificate re-read each time."""

    def __init__(self, opts):
        import threading

        self._opts = opts
        self._session = None
        self._updated = None
        self._lock = threading.Lock()

    def current(self):
        """The session to serve, or None when none is valid (the caller answers an error, never empty data)."""
        with self._lock:
            now = utcnow()
            if self._session is None or self._session.expiration_datetime() - now <= REFRESH_MARGIN:
                try:
                    self._session, self._updated = fetch_session(self._opts), now
                except Exception as exc:  # noqa: BLE001 - logged; a still-valid session keeps being served
                    log(f"refreshing credentials failed: {exc}")
            if self._session is not None and self._session.expiration_datetime() > now:
                return self._session, self._updated
            return None, None


def _rfc3339(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_server(opts, source, port=None):
    """An IMDSv2-compatible HTTP server bound to 127.0.0.1 (aws_signing_helper ``serve`` routes)."""
    import base64
    import http.server
    import json
    import secrets
    import socket
    import threading

    role_name = opts.role_arn.rsplit("/", 1)[-1]
    tokens = {}
    tokens_lock = threading.Lock()
    max_tokens, max_ttl = 256, 21600
    token_path = "/latest/api/token"
    list_path = "/latest/meta-data/iam/security-credentials"

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "rolesanywhere-credential-helper"
        sys_version = ""

        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, opts.hop_limit)

        def log_message(self, fmt, *args):  # access logs would be noise in the journal
            pass

        def _reply(self, status, body="", content_type="text/plain", headers=()):
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _path(self):
            return self.path.split("?", 1)[0].rstrip("/")

        def do_PUT(self):
            if self._path() != token_path:
                return self._reply(404, "not found")
            if self.headers.get("X-Forwarded-For"):
                return self._reply(400, "forwarded requests are not allowed")
            raw_ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", str(max_ttl))
            try:
                ttl = int(raw_ttl)
            except ValueError:
                ttl = 0
            if not 1 <= ttl <= max_ttl:
                return self._reply(400, "invalid token TTL")
            token = base64.b64encode(secrets.token_bytes(128)).decode()[:100]
            now = time.monotonic()
            with tokens_lock:
                for stale in [t for t, expiry in tokens.items() if expiry <= now]:
                    del tokens[stale]
                if len(tokens) >= max_tokens:
                    del tokens[min(tokens, key=tokens.get)]
                tokens[token] = now + ttl
            return self._reply(200, token, headers=[("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))])

        def do_GET(self):
            path = self._path()
            if path not in (list_path, f"{list_path}/{role_name}"):
                return self._reply(404, "not found")
            token = self.headers.get("X-aws-ec2-metadata-token")
            if not token:
                return self._reply(401, "no token provided")
            with tokens_lock:
                valid = tokens.get(token, 0) > time.monotonic()
            if not valid:
                return self._reply(401, "invalid token provided")
            if path == list_path:
                return self._reply(200, role_name)
            session, updated = source.current()
            if session is None:
                return self._reply(500, "no valid credentials: see the helper's log")
            document = {
                "AccessKeyId": session.access_key_id,
                "SecretAccessKey": session.secret_access_key,
                "Token": session.session_token,
                "Code": "Success",
                "Type": "AWS-HMAC",
                "Expiration": session.expiration,
                "LastUpdated": _rfc3339(updated),
            }
            return self._reply(200, json.dumps(document, separators=(",", ":")), "application/json")

        def do_POST(self):
            self._reply(405, "method not allowed")

        do_DELETE = do_PATCH = do_POST

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

    return Server(("127.0.0.1", opts.port if port is None else port), Handler)


def serve(opts) -> int:
    source = CredentialSource(opts)
    source.current()  # log a first failure early; serving starts either way
    server = make_server(opts, source)
    port = server.server_address[1]
    log(f"Local server started on port: {port}")
    log(f"Make it available to the sdk by running: export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:{port}/")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


COMMANDS = {"credential-process": credential_process, "update": update, "serve": serve}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    opts = parse_credential_process(argv)
    if opts is None:
        parser = build_parser()
        opts = parser.parse_args(argv)
    if opts.command is None:
        parser.print_help()
        return 0
    if opts.command == "version":
        sys.stdout.write(VERSION + "\n")
        return 0
    try:
        validate(opts)
        return COMMANDS[opts.command](opts)
    except KeyboardInterrupt:
        return 1
    except Exception as exc:  # noqa: BLE001 - one line on stderr, never a traceback
        try:
            known = isinstance(exc, _known_errors())
        except Exception:  # noqa: BLE001 - the signer itself failed to import
            known = False
        log(exc if known else f"{type(exc).__name__}: {exc}")
        return 1
