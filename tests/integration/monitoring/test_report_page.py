"""report.yml's report.html in a real headless chromium: loads with no console error, its numbers match
report.json, the hosts that need attention come first, the full table sorts, filters and pages; a screenshot
is kept as a test artefact."""
import datetime
import json

import pytest

from tests.support.ansible import REPO, run_module, run_playbook
from tests.unit.plugins.module_utils.test_host_state import make_cert

from .browser import Browser

ARTEFACTS = REPO / ".work" / "test-artefacts" / "monitoring"
NOW = datetime.datetime.now(datetime.timezone.utc)
HOSTILE = "</script><script>console.error('injected')</script><img src=x onerror=console.error('img')>"


def iso(days_ago):
    return (NOW - datetime.timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def enrol_local(tmp_path, host, days_valid, started_days_ago, **updates):
    """A host's state file as enrol leaves it; the certificate's dates are relative to the real clock."""
    shift = (NOW - datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.timezone.utc)).days
    cert = tmp_path / f"{host}.pem"
    cert.write_bytes(make_cert(days_valid, started_days_ago - shift))
    state = tmp_path / f"{host}.fact"
    result = run_module("rolesanywhere_host_state", {"path": str(state), "certificate_path": str(cert),
                                                     "metrics_dir": "", "updates": updates})
    assert result.changed
    return state


@pytest.fixture(scope="module")
def fleet_report(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("report")
    fresh = {"helper_impl": "python", "helper_version": "0.3.1", "last_verified_at": iso(0), "last_error": None}
    states = {
        "web01": enrol_local(tmp_path, "web01", 90, 1, **fresh),
        "web02": enrol_local(tmp_path, "web02", 90, 85, **fresh),                       # due, 5 days left
        "web03": enrol_local(tmp_path, "web03", 90, 10, **dict(fresh, last_error=HOSTILE)),  # failed
        "web04": tmp_path / "missing.fact",                                             # never enrolled
        "web05": enrol_local(tmp_path, "web05", 30, 40, **fresh),                       # expired
        "web06": enrol_local(tmp_path, "web06", 365, 20, **dict(fresh, last_verified_at=iso(3))),  # stale proof
    }
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[fleet]\n" + "".join(
        f"{host} ansible_connection=local report_state_path={path}\n" for host, path in states.items()))
    out = tmp_path / "out"
    proc = run_playbook(REPO / "playbooks" / "report.yml", inventory=str(inventory),
                        extra_vars={"report_hosts": "fleet", "report_dir": str(out)})
    return out, json.loads((out / "report.json").read_text()), proc


@pytest.fixture(scope="module")
def page(fleet_report):
    out, _, _ = fleet_report
    browser = Browser()
    try:
        browser.open((out / "report.html").as_uri())
        yield browser
    finally:
        browser.close()


def test_report_json_says_why_hosts_need_attention(fleet_report):
    _, rows, proc = fleet_report
    by_host = {row["host"]: row for row in rows}
    assert by_host["web01"]["status"] == "ok" and by_host["web01"]["attention"] == []
    assert by_host["web02"]["attention"] == ["due"]
    assert by_host["web03"]["attention"] == ["failed"] and by_host["web03"]["last_error"] == HOSTILE
    assert by_host["web04"]["attention"] == ["failed", "stale"]
    assert by_host["web05"]["attention"] == ["expired"]
    assert by_host["web06"]["status"] == "ok" and by_host["web06"]["attention"] == ["stale"]
    assert "web06" in proc.stdout


def test_page_is_self_contained(fleet_report):
    out, _, _ = fleet_report
    text = (out / "report.html").read_text()
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text
    assert "default-src 'none'" in text  # the browser itself refuses any fetch
    assert HOSTILE not in text  # escaped everywhere


def test_page_loads_without_console_errors_and_matches_report_json(fleet_report, page):
    _, rows, _ = fleet_report
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(ARTEFACTS / "report.png")
    assert (ARTEFACTS / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {ARTEFACTS / 'report.png'}")

    assert page.console_errors() == []
    assert page.evaluate("document.getElementById('host-count').textContent") == str(len(rows))
    for status in ("ok", "renewed", "due", "expired", "failed"):
        shown = page.evaluate(f"document.getElementById('count-{status}').textContent")
        assert int(shown) == sum(1 for row in rows if row["status"] == status), status
    for reason in ("stale", "unseen"):
        shown = page.evaluate(f"document.getElementById('count-{reason}').textContent")
        assert int(shown) == sum(1 for row in rows if reason in row["attention"]), reason

    buckets = page.evaluate("Object.fromEntries([...document.querySelectorAll('#expiry-histogram .bucket')]"
                            ".map(g => [g.dataset.bucket, +g.dataset.count]))")
    assert sum(buckets.values()) == len(rows)
    assert buckets["expired"] == sum(1 for r in rows if r["days_left"] is not None and r["days_left"] < 0)
    assert buckets["< 7 d"] == sum(1 for r in rows if r["days_left"] is not None and 0 <= r["days_left"] < 7)
    assert buckets["unknown"] == sum(1 for r in rows if r["days_left"] is None)

    attention = page.evaluate("[...document.querySelectorAll('#attention tbody tr')].map(tr => tr.dataset.host)")
    assert set(attention) == {row["host"] for row in rows if row["attention"]}
    assert attention[:2] == ["web03", "web04"] and attention[-1] == "web02"  # failed first, merely due last
    shown_error = page.evaluate("document.querySelector('#attention tr[data-host=web03] td.err').textContent")
    assert shown_error == HOSTILE  # shown as text, never run


def test_full_table_sorts_filters_and_pages(fleet_report, page):
    _, rows, _ = fleet_report
    body = "[...document.querySelectorAll('#hosts tbody tr')].map(tr => tr.cells[0].textContent)"
    assert page.evaluate(body) == [row["host"] for row in rows]
    page.evaluate("document.querySelectorAll('#hosts th button')[2].click()")  # days_left, ascending
    with_days = sorted((r for r in rows if r["days_left"] is not None), key=lambda r: r["days_left"])
    assert page.evaluate(body)[:len(with_days)] == [r["host"] for r in with_days]
    page.evaluate("const f = document.getElementById('filter'); f.value = 'web06';"
                  "f.dispatchEvent(new Event('input'))")
    assert page.evaluate(body) == ["web06"]
    assert page.evaluate("document.getElementById('page-info').textContent") == "page 1 of 1 (1 hosts)"
    assert page.console_errors() == []


def test_page_for_10000_hosts_is_aggregated():
    """No element per host up front: fixed histogram bars, at most ATTENTION_LIMIT listed, the rest as data."""
    from ansible_collections.rolesanywhere.fleet.plugins.filter.report_html import ATTENTION_LIMIT, report_html

    rows = [{"host": f"host{i:05d}", "status": "failed" if i % 4 == 0 else "ok", "days_left": i % 400 - 20,
             "attention": ["failed"] if i % 4 == 0 else [], "last_error": "<b>x</b>" if i % 4 == 0 else None}
            for i in range(10000)]
    page = report_html(rows, generated_at="2026-12-07T00:00:00Z")
    assert page.count("<rect") == 10 and page.count('<tr data-host="') == ATTENTION_LIMIT
    assert '<p id="attention-more">1500 more' in page
    data = json.loads(page.split('id="report-data">', 1)[1].split("</script>", 1)[0])
    assert [row[0] for row in data["rows"]] == [row["host"] for row in rows]
    assert data["rows"][0][data["columns"].index("last_error")] == "<b>x</b>"  # "<" escaped in the page only
