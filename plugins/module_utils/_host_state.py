# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-host Roles Anywhere state kept for monitoring: one JSON file that Ansible reads as local facts.

Pure Python: used by the host-state module, the rotate role and report.yml.
"""
import datetime
import hashlib
import json
import os
import re
import tempfile

DEFAULT_STATE_PATH = "/etc/ansible/facts.d/rolesanywhere.fact"

# Fields that change on every run without the host's state changing: they are written but do not
# make a run "changed", so that a rerun of a healthy fleet reports changed=0. ``attempts`` is the metrics'
# bookkeeping (see _metrics.record_attempt); a failure also changes last_error.
VOLATILE_FIELDS = frozenset(("last_verified_at", "last_attempt_at", "checked_at", "attempts"))

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(value, name="duration"):
    """Seconds of a duration such as "30d", "12h", "90m" or "3600"; ValueError naming ``name`` otherwise."""
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{name} {value!r} is not a duration; use e.g. '30d', '12h', '90m' or '3600'")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class RenewBefore:
    """When a certificate is due: a fixed time before notAfter ("30d", "12h") or a share of its lifetime ("33%")."""

    def __init__(self, value):
        text = str(value).strip()
        if text.endswith("%"):
            try:
                self.percent = float(text[:-1])
            except ValueError:
                raise ValueError(f"renew_before {value!r} is not a percentage; use e.g. '33%'") from None
            if not 0 < self.percent < 100:
                raise ValueError(f"renew_before {value!r} must be between 0% and 100%, e.g. '33%'")
            self.seconds = None
            return
        if not _DURATION.match(text):
            raise ValueError(f"renew_before {value!r} is neither a duration ('30d', '12h', '3600') nor a percentage ('33%')")
        self.percent = None
        self.seconds = duration_seconds(text)

    def window_seconds(self, lifetime_seconds):
        if self.percent is not None:
            return lifetime_seconds * self.percent / 100.0
        return self.seconds


def _utc(dt):
    return dt if dt.tzinfo else dt.replace(tzinfo=datetime.timezone.utc)


def _iso(dt):
    return _utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


SUMMARY_FIELDS = ("subject", "issuer", "serial", "not_before", "not_after", "lifetime_seconds")


def certificate_summary(pem, known=None):
    """Subject, serial (lower-case hex), validity, lifetime and SHA-256 of a PEM certificate.

    ``known`` is an earlier summary (the state file): when its SHA-256 is this certificate's, it is the answer,
    and cryptography (a fifth of a scheduled rotation run's CPU) is not imported.
    """
    data = pem if isinstance(pem, bytes) else pem.encode()
    digest = hashlib.sha256(data).hexdigest()
    if known and known.get("certificate_sha256") == digest and all(known.get(name) for name in SUMMARY_FIELDS):
        return dict({name: known[name] for name in SUMMARY_FIELDS}, certificate_sha256=digest)
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(data)
    # Debian 12's python3-cryptography (38) has no *_utc properties; hosts run it.
    not_before = _utc(getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before)
    not_after = _utc(getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "not_before": _iso(not_before),
        "not_after": _iso(not_after),
        "lifetime_seconds": int((not_after - not_before).total_seconds()),
        "certificate_sha256": digest,
    }


def _parse_iso(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def classify(summary, renew_before, now, last_error=None):
    """ok / renewed / due / expired / failed, and the days left, for a certificate summary (or a host state)."""
    if summary is None:
        return "failed", None
    not_after = _parse_iso(summary["not_after"])
    left = (not_after - now).total_seconds()
    days_left = round(left / 86400, 1)
    if left <= 0:
        return "expired", days_left
    if last_error:
        return "failed", days_left
    if left <= renew_before.window_seconds(summary["lifetime_seconds"]):
        return "due", days_left
    # Written by the rotate role: the host runs on a certificate it renewed itself.
    return ("renewed" if summary.get("rotation_state") == "renewed" else "ok"), days_left


def file_digests(paths):
    """SHA-256 of each file (None when missing): what a converged host must still have."""
    digests = {}
    for path in paths:
        try:
            with open(path, "rb") as fh:
                digests[path] = hashlib.sha256(fh.read()).hexdigest()
        except FileNotFoundError:
            digests[path] = None
    return digests


def is_converged(state, fingerprint, status):
    """True when the host was enrolled with these inputs, nothing it manages drifted and its certificate is good."""
    recorded = state.get("managed_files") or {}
    return (
        bool(fingerprint)
        and state.get("fingerprint") == fingerprint
        and status in ("ok", "renewed")
        and bool(recorded)
        and file_digests(recorded) == recorded
    )


def verification_due(state, max_age_seconds, now):
    """True when the host's credentials were never proven, or not within ``max_age_seconds``."""
    verified = state.get("last_verified_at")
    if not verified:
        return True
    return (now - _parse_iso(verified)).total_seconds() > max_age_seconds


def read_state(path):
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ValueError(f"state file {path} is not JSON ({exc}); remove it and rerun") from None
    return data if isinstance(data, dict) else {}


def merge_state(old, updates):
    """The new state and whether anything but the volatile fields changed."""
    new = dict(old)
    new.update(updates)
    changed = {k: v for k, v in new.items() if k not in VOLATILE_FIELDS} != {
        k: v for k, v in old.items() if k not in VOLATILE_FIELDS
    }
    return new, changed


def write_state(path, state):
    """Write atomically, mode 0644 (monitoring agents read it; it holds no secret)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".rolesanywhere-state.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def timestamp(now=None):
    return _iso(now or now_utc())
