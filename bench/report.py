#!/usr/bin/env python
"""Fleet report generation for 10 000 synthetic hosts: wall time and size of report.json, report.csv and
report.html, against a baseline measured in the same run (writing report.json alone, what the report did
before the page). Options: ``--playbook`` also times report.yml's controller half (the same filters templated
by ansible-playbook from a vars file), ``--browser`` loads the page in headless chromium (load time, DOM size,
console errors).

    .venv/bin/python bench/report.py [--hosts 10000] [--playbook] [--browser]
"""
import argparse
import datetime
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.ansible import ensure_collection_link, run_playbook  # noqa: E402

sys.path.insert(0, str(ensure_collection_link()))

from ansible_collections.rolesanywhere.fleet.plugins.filter.report import (  # noqa: E402
    REPORT_COLUMNS, report_assess, report_csv)
from ansible_collections.rolesanywhere.fleet.plugins.filter.report_html import report_html  # noqa: E402

NOW = datetime.datetime.now(datetime.timezone.utc)
STATUS_WEIGHTS = {"ok": 80, "renewed": 8, "due": 7, "expired": 1, "failed": 4}


def iso(delta_days):
    return (NOW + datetime.timedelta(days=delta_days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def synthetic_rows(count, seed=15):
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        status = rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()))[0]
        days_left = {"expired": -rng.uniform(0, 30), "due": rng.uniform(0, 29)}.get(status, rng.uniform(30, 365))
        row = dict.fromkeys(REPORT_COLUMNS)
        row.update(host=f"host{i:05d}.example.net", status=status, subject=f"CN=host{i:05d},OU=Fleet,O=Example",
                   serial=format(rng.getrandbits(120), "x"), not_after=iso(days_left), days_left=round(days_left, 1),
                   helper_impl=rng.choice(["python", "aws", "p11kit"]), helper_version="0.3.1",
                   last_verified_at=iso(-rng.uniform(0, 1.1)), last_attempt_at=iso(-rng.uniform(0, 2)))
        if status == "failed":
            row["last_error"] = "CreateSession failed: AccessDeniedException: certificate serial revoked"
        rows.append(row)
    return rows


def timed(fn, repeat=3):
    best, result = None, None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return best, result


PLAYBOOK = """---
- name: report.yml's controller half over pre-built rows
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Assess
      ansible.builtin.set_fact:
        report_rows: "{{ bench_rows | rolesanywhere.fleet.report_assess }}"
      when: not load_only
    - name: Write report.json, report.csv and report.html
      ansible.builtin.copy:
        dest: "{{ out }}/{{ item.name }}"
        content: "{{ item.content }}"
        mode: "0644"
      loop:
        - {name: report.json, content: "{{ report_rows | to_nice_json }}\\n"}
        - {name: report.csv, content: "{{ report_rows | rolesanywhere.fleet.report_csv }}"}
        - {name: report.html, content: "{{ report_rows | rolesanywhere.fleet.report_html }}"}
      loop_control:
        label: "{{ item.name }}"
      when: not load_only
"""


def bench_playbook(rows, workdir):
    """(seconds to start ansible-playbook and load the rows, seconds for the report tasks, page bytes)."""
    vars_file = workdir / "rows.json"
    vars_file.write_text(json.dumps({"bench_rows": rows}))
    playbook = workdir / "report_controller.yml"
    playbook.write_text(PLAYBOOK)
    walls = []
    for load_only in (True, False):
        started = time.perf_counter()
        run_playbook(playbook, extra_vars={"out": str(workdir), "load_only": load_only}, args=["-e", f"@{vars_file}"])
        walls.append(time.perf_counter() - started)
    return walls[0], walls[1] - walls[0], (workdir / "report.html").stat().st_size


def bench_browser(page_path):
    from tests.integration.monitoring.browser import Browser

    browser = Browser()
    try:
        started = time.perf_counter()
        browser.open(page_path.as_uri())
        loaded = time.perf_counter() - started
        nodes = browser.evaluate("document.getElementsByTagName('*').length")
        rows = browser.evaluate("document.querySelectorAll('#hosts tbody tr').length")
        return loaded, nodes, rows, browser.console_errors()
    finally:
        browser.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10000)
    parser.add_argument("--playbook", action="store_true")
    parser.add_argument("--browser", action="store_true")
    args = parser.parse_args()
    rows = synthetic_rows(args.hosts)

    baseline, json_text = timed(lambda: json.dumps(rows, indent=4, sort_keys=True))
    assess_time, assessed = timed(lambda: report_assess(rows))
    csv_time, csv_text = timed(lambda: report_csv(assessed))
    html_time, page = timed(lambda: report_html(assessed))
    attention = sum(1 for row in assessed if row["attention"])
    print(f"hosts: {args.hosts} (needing attention: {attention})")
    print(f"baseline report.json alone: {baseline * 1000:.0f} ms, {len(json_text) / 1e6:.2f} MB")
    print(f"report_assess:              {assess_time * 1000:.0f} ms")
    print(f"report.csv:                 {csv_time * 1000:.0f} ms, {len(csv_text) / 1e6:.2f} MB")
    print(f"report.html:                {html_time * 1000:.0f} ms, {len(page.encode()) / 1e6:.2f} MB "
          f"({html_time / baseline:.1f}x the baseline's time, {len(page.encode()) / len(json_text):.2f}x its size)")
    print(f"SVG elements in the page:   {page.count('<rect')} bars, whatever the fleet size")

    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        workdir = Path(tmp)
        page_path = workdir / "report.html"
        page_path.write_text(page)
        if args.playbook:
            load, tasks, size = bench_playbook(rows, workdir)
            print(f"ansible-playbook: start-up and loading the rows {load:.1f} s (baseline), report tasks "
                  f"{tasks:.1f} s more, report.html {size / 1e6:.2f} MB")
        if args.browser:
            loaded, nodes, shown, errors = bench_browser(page_path)
            print(f"chromium: load event after {loaded * 1000:.0f} ms, {nodes} DOM elements, {shown} table rows drawn, "
                  f"console errors: {len(errors)}")


if __name__ == "__main__":
    main()
