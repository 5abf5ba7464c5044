# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus metrics of a host's Roles Anywhere state, as a node_exporter textfile.

Host side, stdlib only (Python 3.9+): used by the host-state and rotation modules, which already write the
state file, so no extra task runs per host. The metrics are rendered from the state file's fields; the
per-operation attempt bookkeeping (last attempt, its result, failures) lives in the state's ``attempts``.
"""
from __future__ import annotations

import calendar
import os
import secrets
import time

DEFAULT_DIR = "/var/lib/prometheus/node-exporter"
FILE_NAME = "rolesanywhere.prom"
OPERATIONS = ("enrol", "rotation")
HOST_STATUSES = ("ok", "renewed", "due", "expired", "failed")
ROTATION_STATES = ("ok", "due", "renewed", "failed")


def _epoch(iso):
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")) if iso else None


def record_attempt(state, operation, success, when):
    """The state's ``attempts`` after an attempt of ``operation`` (enrol / rotation) at ``when`` (ISO time)."""
    attempts = {name: dict(value) for name, value in (state.get("attempts") or {}).items()}
    entry = attempts.setdefault(operation, {"failures": 0})
    entry.update(last_at=when, success=bool(success))
    if not success:
        entry["failures"] = entry.get("failures", 0) + 1
    return attempts


def _label_value(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value):
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Exposition:
    def __init__(self):
        self.lines = []

    def family(self, name, kind, help_text, samples):
        """``samples``: (labels dict, value) pairs; a family without samples is left out."""
        samples = [(labels, value) for labels, value in samples if value is not None]
        if not samples:
            return
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for labels, value in samples:
            text = ",".join(f'{key}="{_label_value(val)}"' for key, val in labels.items())
            self.lines.append(f"{name}{{{text}}} {_number(value)}" if text else f"{name} {_number(value)}")

    def text(self):
        return "\n".join(self.lines) + "\n"


def render(state, status, now):
    """The exposition text for a host's state; ``status`` is its classification (see _host_state.classify)."""
    out = _Exposition()
    not_after = _epoch(state.get("not_after"))
    out.family("rolesanywhere_certificate_not_after_timestamp_seconds", "gauge",
               "notAfter of the host's Roles Anywhere certificate, seconds since the epoch.", [({}, not_after)])
    out.family("rolesanywhere_certificate_not_before_timestamp_seconds", "gauge",
               "notBefore of the host's Roles Anywhere certificate, seconds since the epoch.",
               [({}, _epoch(state.get("not_before")))])
    out.family("rolesanywhere_certificate_lifetime_seconds", "gauge",
               "Validity period of the host's certificate.", [({}, state.get("lifetime_seconds"))])
    out.family("rolesanywhere_certificate_remaining_seconds", "gauge",
               "Seconds the certificate had left when this file was written (alert on not_after - time()).",
               [({}, None if not_after is None else not_after - int(now.timestamp()))])
    out.family("rolesanywhere_credentials_last_proof_timestamp_seconds", "gauge",
               "Last time the host proved its credentials (CreateSession), seconds since the epoch.",
               [({}, _epoch(state.get("last_verified_at")))])
    attempts = state.get("attempts") or {}
    out.family("rolesanywhere_last_attempt_timestamp_seconds", "gauge",
               "Last enrolment or rotation attempt, seconds since the epoch.",
               [({"operation": op}, _epoch(attempts[op].get("last_at"))) for op in OPERATIONS if op in attempts])
    out.family("rolesanywhere_last_attempt_success", "gauge",
               "1 when the last attempt of the operation succeeded, 0 when it failed.",
               [({"operation": op}, int(bool(attempts[op].get("success")))) for op in OPERATIONS if op in attempts])
    out.family("rolesanywhere_attempt_failures_total", "counter",
               "Failed enrolment or rotation attempts on this host.",
               [({"operation": op}, (attempts.get(op) or {}).get("failures", 0)) for op in OPERATIONS])
    out.family("rolesanywhere_host_status", "gauge",
               "The host's Roles Anywhere status (1 for the current one), as report.yml classifies it.",
               [({"status": s}, int(s == status)) for s in HOST_STATUSES] if status else [])
    rotation_state = state.get("rotation_state")
    out.family("rolesanywhere_rotation_state", "gauge",
               "The state of certificate rotation on the host (1 for the current one).",
               [({"state": s}, int(s == rotation_state)) for s in ROTATION_STATES] if rotation_state else [])
    if state.get("helper_impl"):
        out.family("rolesanywhere_helper_info", "gauge", "The credential helper in use.",
                   [({"impl": state["helper_impl"], "version": state.get("helper_version") or ""}, 1)])
    return out.text()


def write_textfile(directory, text):
    """Replace ``directory``/rolesanywhere.prom atomically, mode 0644 (the exporter's user reads it).

    The directory is opened without following a link, and the file is created next to its final name and
    renamed over it, so a scrape never sees half a file and no link in the directory is followed.
    """
    os.makedirs(directory, mode=0o755, exist_ok=True)
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise OSError(f"metrics directory {directory} cannot be opened ({exc.strerror}); give a real directory, "
                      "not a link") from None
    # node_exporter reads only names ending in .prom: the temporary name does not.
    tmp = f".{FILE_NAME}.{secrets.token_hex(6)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o644)
                fh.write(text.encode())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, FILE_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            os.unlink(tmp, dir_fd=dir_fd)
            raise
    finally:
        os.close(dir_fd)
    return os.path.join(directory, FILE_NAME)


def publish(state, status, now, metrics_dir=None):
    """Write the textfile; returns its path, or None when off.

    ``metrics_dir``: None is node_exporter's Debian directory, used only when it exists (the exporter is
    installed); another path is created when missing; "" turns metrics off.
    """
    if metrics_dir == "":
        return None
    if metrics_dir is None:
        if not os.path.isdir(DEFAULT_DIR):
            return None
        metrics_dir = DEFAULT_DIR
    return write_textfile(metrics_dir, render(state, status, now))
