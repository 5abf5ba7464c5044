# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn per-host Roles Anywhere state into report rows, a console table and CSV."""

import csv
import datetime
import io
import re

from ansible_collections.rolesanywhere.fleet.plugins.module_utils._host_state import duration_seconds, now_utc

REPORT_COLUMNS = (
    "host", "status", "subject", "serial", "not_after", "days_left",
    "helper_impl", "helper_version", "last_verified_at", "last_attempt_at", "stuck_since", "last_error",
    "aws_last_seen_at", "attention",
)
# Why a host needs attention, most urgent first.
ATTENTION = ("failed", "expired", "unseen", "stale", "due")


def report_rows(hostvars, hosts, result_var):
    """One row per host, in inventory order; a host without a result (unreachable) is reported failed."""
    rows = []
    for host in hosts:
        result = hostvars[host].get(result_var) or {}
        state = result.get("host_state") or {}
        row = {column: state.get(column) for column in REPORT_COLUMNS}
        row["host"] = host
        if not state:
            row["status"] = "failed"
            row["last_error"] = result.get("msg") or "no state: host unreachable or not enrolled"
        rows.append(row)
    return rows


def _age_seconds(iso, now):
    if not iso:
        return None
    then = datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    return (now - then).total_seconds()


def _subject_key(subject):
    """A distinguished name compared by its attributes, whatever their order and spacing."""
    parts = re.split(r"(?<!\\)[,+]", subject or "")
    return tuple(sorted(re.sub(r"\s*=\s*", "=", part.strip()) for part in parts if part.strip()))


def _aws_last_seen(subject, serial):
    """When AWS last saw this certificate (or, without per-certificate detail, its subject)."""
    if subject is None:
        return None
    if "credentials" not in subject:
        return subject.get("last_seen_at")
    return next((c.get("seen_at") for c in subject["credentials"] if c["serial_number"] == serial), None)


def report_assess(rows, stale_after="1d", subjects=None, unseen_after="7d", now=None):
    """Rows with ``attention``: why each host needs looking at (see ATTENTION), most urgent first.

    ``stale``: no successful credential proof within ``stale_after``. With ``subjects`` (from
    rolesanywhere_subject_info, matched by subject name) each row gets ``aws_last_seen_at``, when Roles Anywhere
    last saw the host's current certificate, and ``unseen`` when that is longer ago than ``unseen_after`` or never.
    """
    now = now_utc() if now is None else datetime.datetime.strptime(now, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)
    stale_seconds = duration_seconds(stale_after, "stale_after")
    unseen_seconds = duration_seconds(unseen_after, "unseen_after")
    subjects_by_key = {_subject_key(subject["x509_subject"]): subject for subject in subjects or []}
    assessed = []
    for row in rows:
        row = dict(row)
        reasons = {row["status"]} & set(ATTENTION)
        proof_age = _age_seconds(row.get("last_verified_at"), now)
        if proof_age is None or proof_age > stale_seconds:
            reasons.add("stale")
        if subjects is not None:
            row["aws_last_seen_at"] = _aws_last_seen(subjects_by_key.get(_subject_key(row.get("subject"))), row.get("serial"))
            seen_age = _age_seconds(row["aws_last_seen_at"], now)
            if seen_age is None or seen_age > unseen_seconds:
                reasons.add("unseen")
        row["attention"] = [reason for reason in ATTENTION if reason in reasons]
        assessed.append(row)
    return assessed


def _cell(value):
    return "-" if value is None or value == "" else str(value)


def report_table(rows, columns=("host", "status", "days_left", "not_after", "serial", "subject", "helper_impl", "last_verified_at")):
    """A fixed-width text table, one line per host, for the console."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in cells]
    return lines


def report_csv(rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=REPORT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ";".join(v) if isinstance(v, list) else v for k, v in row.items()} for row in rows)
    return out.getvalue()


class FilterModule:
    def filters(self):
        return {"report_rows": report_rows, "report_assess": report_assess, "report_table": report_table,
                "report_csv": report_csv}
