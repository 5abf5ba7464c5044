# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn per-host Roles Anywhere state into report rows, a console table and CSV."""

import csv
import io


REPORT_COLUMNS = (
    "host", "status", "subject", "serial", "not_after", "days_left",
    "helper_impl", "helper_version", "last_verified_at", "last_attempt_at", "stuck_since", "last_error",
)


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
    writer.writerows(rows)
    return out.getvalue()


class FilterModule:
    def filters(self):
        return {"report_rows": report_rows, "report_table": report_table, "report_csv": report_csv}
