# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report as one self-contained HTML page (inline CSS, SVG and script; nothing fetched).

Sized for 10 000 hosts: the counts and the expiry histogram are aggregates (a fixed number of SVG elements),
the hosts that need attention are listed first (capped), and the full table is drawn by the page's script
from the embedded rows one page at a time, so the document never holds one element per host up front.
"""

import html
import json

from ansible_collections.rolesanywhere.fleet.plugins.filter.report import ATTENTION
from ansible_collections.rolesanywhere.fleet.plugins.module_utils._host_state import timestamp

STATUSES = ("ok", "renewed", "due", "expired", "failed")
# Days left: (label, upper bound exclusive); "expired" below 0 and "unknown" without a certificate.
EXPIRY_BUCKETS = (("expired", 0), ("< 7 d", 7), ("7-14 d", 14), ("14-30 d", 30), ("30-60 d", 60),
                  ("60-90 d", 90), ("90-180 d", 180), ("180-365 d", 365), ("> 1 y", None))
ATTENTION_LIMIT = 1000
TABLE_COLUMNS = ("host", "status", "days_left", "not_after", "serial", "helper_impl", "helper_version",
                 "last_verified_at", "aws_last_seen_at", "attention", "last_error")
COLOURS = {"ok": "#2e7d32", "renewed": "#1565c0", "due": "#ef6c00", "expired": "#b71c1c", "failed": "#c62828",
           "stale": "#6a1b9a", "unseen": "#4e342e", "unknown": "#757575"}

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 2rem 2rem;color:#212121;background:#fafafa}
h1{font-size:1.5rem;margin:1rem 0 .2rem}h2{font-size:1.15rem;margin:1.6rem 0 .5rem}
.meta{color:#616161;margin:0}
.cards{display:flex;flex-wrap:wrap;gap:.6rem}
.card{background:#fff;border-left:6px solid var(--c);padding:.5rem .9rem;min-width:7rem;box-shadow:0 1px 2px #0002}
.card .n{display:block;font-size:1.6rem;font-weight:600}
table{border-collapse:collapse;background:#fff;width:100%;box-shadow:0 1px 2px #0002}
th,td{padding:.25rem .5rem;border-bottom:1px solid #eee;text-align:left;white-space:nowrap}
td.err{white-space:normal;max-width:40rem;color:#b71c1c}
th button{font:inherit;font-weight:600;background:none;border:0;cursor:pointer;padding:0}
.tag{display:inline-block;padding:0 .4rem;border-radius:.6rem;color:#fff;background:var(--c);font-size:.85em}
.tools{display:flex;gap:1rem;align-items:center;margin:.4rem 0}
svg text{font:12px system-ui,sans-serif;fill:#424242}
"""

# The full table: sort by a column (click its header), filter by text, page through 100 rows at a time.
SCRIPT = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var cols = data.columns, rows = data.rows, shown = rows, page = 0, size = 100, sortCol = -1, asc = true;
  var body = document.querySelector("#hosts tbody"), info = document.getElementById("page-info");
  function text(v) { return v === null || v === undefined ? "" : Array.isArray(v) ? v.join(" ") : String(v); }
  function draw() {
    var pages = Math.max(1, Math.ceil(shown.length / size));
    page = Math.min(Math.max(page, 0), pages - 1);
    var frag = document.createDocumentFragment();
    shown.slice(page * size, page * size + size).forEach(function (r) {
      var tr = document.createElement("tr");
      r.forEach(function (v, i) {
        var td = document.createElement("td");
        td.textContent = text(v);
        if (cols[i] === "last_error") { td.className = "err"; }
        tr.appendChild(td);
      });
      frag.appendChild(tr);
    });
    body.replaceChildren(frag);
    info.textContent = "page " + (page + 1) + " of " + pages + " (" + shown.length + " hosts)";
  }
  function compare(a, b) {
    var x = a[sortCol], y = b[sortCol];
    if (x === y) { return 0; }
    if (x === null || x === undefined) { return 1; }
    if (y === null || y === undefined) { return -1; }
    var r = typeof x === "number" && typeof y === "number" ? x - y : text(x).localeCompare(text(y));
    return asc ? r : -r;
  }
  document.querySelectorAll("#hosts th button").forEach(function (b, i) {
    b.addEventListener("click", function () {
      asc = sortCol === i ? !asc : true;
      sortCol = i;
      shown = shown.slice().sort(compare);
      page = 0;
      draw();
    });
  });
  document.getElementById("filter").addEventListener("input", function (e) {
    var q = e.target.value.toLowerCase();
    shown = rows.filter(function (r) { return r.some(function (v) { return text(v).toLowerCase().indexOf(q) >= 0; }); });
    if (sortCol >= 0) { shown.sort(compare); }
    page = 0;
    draw();
  });
  document.getElementById("prev").addEventListener("click", function () { page -= 1; draw(); });
  document.getElementById("next").addEventListener("click", function () { page += 1; draw(); });
  draw();
}());
"""


def _e(value):
    return html.escape("" if value is None else str(value))


def expiry_histogram(rows):
    """[(label, count)] of days left over EXPIRY_BUCKETS, plus "unknown" for hosts without a certificate."""
    counts = dict.fromkeys([label for label, _bound in EXPIRY_BUCKETS] + ["unknown"], 0)
    for row in rows:
        days = row.get("days_left")
        if days is None:
            counts["unknown"] += 1
            continue
        for label, bound in EXPIRY_BUCKETS:
            if bound is None or days < bound:
                counts[label] += 1
                break
    return list(counts.items())


def _histogram_svg(buckets):
    height, bar_width, gap, top = 220, 64, 16, 20
    width = 20 + len(buckets) * (bar_width + gap)
    peak = max([count for _label, count in buckets] + [1])
    parts = [f'<svg id="expiry-histogram" role="img" aria-label="Certificate expiry histogram" '
             f'viewBox="0 0 {width} {height + 40}" width="{width}" height="{height + 40}" '
             'xmlns="http://www.w3.org/2000/svg">']
    for i, (label, count) in enumerate(buckets):
        x = 10 + i * (bar_width + gap)
        h = round(height * count / peak)
        colour = COLOURS["expired"] if label == "expired" else COLOURS["due"] if label == "< 7 d" else \
            COLOURS["unknown"] if label == "unknown" else COLOURS["renewed"]
        parts.append(f'<g class="bucket" data-bucket="{_e(label)}" data-count="{count}">'
                     f'<title>{_e(label)}: {count} hosts</title>'
                     f'<rect x="{x}" y="{top + height - h}" width="{bar_width}" height="{h}" fill="{colour}"/>'
                     f'<text x="{x + bar_width / 2}" y="{top + height - h - 4}" text-anchor="middle">{count}</text>'
                     f'<text x="{x + bar_width / 2}" y="{top + height + 16}" text-anchor="middle">{_e(label)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _tags(reasons):
    return " ".join(f'<span class="tag" style="--c:{COLOURS.get(r, "#555")}">{_e(r)}</span>' for r in reasons)


def _attention_rows(rows):
    urgent = [row for row in rows if row.get("attention")]
    urgent.sort(key=lambda row: (ATTENTION.index(row["attention"][0]),
                                 row["days_left"] if row.get("days_left") is not None else float("inf"), row["host"]))
    return urgent


def report_html(rows, generated_at=None, title="IAM Roles Anywhere fleet report"):
    """The page for report rows (report_rows | report_assess)."""
    generated_at = generated_at or timestamp()
    status_counts = {status: sum(1 for row in rows if row.get("status") == status) for status in STATUSES}
    reason_counts = {reason: sum(1 for row in rows if reason in (row.get("attention") or [])) for reason in ("stale", "unseen")}
    urgent = _attention_rows(rows)
    cards = "".join(
        f'<div class="card" style="--c:{COLOURS[name]}"><span class="n" id="count-{name}">{count}</span>{label}</div>'
        for name, count, label in
        [(s, status_counts[s], s) for s in STATUSES]
        + [("stale", reason_counts["stale"], "no recent proof"), ("unseen", reason_counts["unseen"], "unseen by AWS")])
    attention_head = "".join(f"<th>{c}</th>" for c in ("host", "attention", "status", "days left", "not after",
                                                       "last proof", "AWS last seen", "last error"))
    attention_body = "".join(
        f'<tr data-host="{_e(row["host"])}"><td>{_e(row["host"])}</td><td>{_tags(row["attention"])}</td>'
        f'<td>{_e(row.get("status"))}</td><td>{_e(row.get("days_left"))}</td><td>{_e(row.get("not_after"))}</td>'
        f'<td>{_e(row.get("last_verified_at"))}</td><td>{_e(row.get("aws_last_seen_at"))}</td>'
        f'<td class="err">{_e(row.get("last_error"))}</td></tr>'
        for row in urgent[:ATTENTION_LIMIT])
    more = (f'<p id="attention-more">{len(urgent) - ATTENTION_LIMIT} more: filter the table below.</p>'
            if len(urgent) > ATTENTION_LIMIT else "")
    data = json.dumps({"columns": TABLE_COLUMNS, "rows": [[row.get(c) for c in TABLE_COLUMNS] for row in rows]},
                      separators=(",", ":"))
    # No "<" in the embedded JSON: it can never close the script element.
    data = data.replace("<", "\\u003c")
    table_head = "".join(f'<th><button type="button">{c}</button></th>' for c in TABLE_COLUMNS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{_e(title)}</title><style>{CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p class="meta">Generated {_e(generated_at)} for <span id="host-count">{len(rows)}</span> hosts.</p>
<h2>Hosts by state</h2><div class="cards" id="counts">{cards}</div>
<h2>Certificate expiry (days left)</h2>{_histogram_svg(expiry_histogram(rows))}
<h2>Needs attention (<span id="attention-count">{len(urgent)}</span>)</h2>
<table id="attention"><thead><tr>{attention_head}</tr></thead><tbody>{attention_body}</tbody></table>{more}
<h2>All hosts</h2>
<div class="tools"><input id="filter" type="search" placeholder="Filter hosts" aria-label="Filter hosts">
<button type="button" id="prev">previous</button><button type="button" id="next">next</button>
<span id="page-info"></span></div>
<noscript><p>The full table needs JavaScript; report.csv has the same rows.</p></noscript>
<table id="hosts"><thead><tr>{table_head}</tr></thead><tbody></tbody></table>
<script type="application/json" id="report-data">{data}</script>
<script>{SCRIPT}</script>
</body></html>
"""


class FilterModule:
    def filters(self):
        return {"report_html": report_html}
