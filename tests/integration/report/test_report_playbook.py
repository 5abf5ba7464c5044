import csv
import datetime
import io
import json

from tests.support.ansible import REPO, run_module, run_playbook
from tests.unit.plugins.module_utils.test_host_state import NOW, make_cert


def test_report_classifies_each_host_and_writes_json_and_csv(tmp_path):
    states = {}
    for host, (days_valid, started_days_ago) in {"web01": (90, 0), "web02": (90, 80)}.items():
        cert = tmp_path / f"{host}.pem"
        # make_cert counts from a fixed NOW: start relative to the real clock.
        cert.write_bytes(make_cert(days_valid, started_days_ago - (datetime.datetime.now(datetime.timezone.utc) - NOW).days))
        states[host] = tmp_path / f"{host}.fact"
        result = run_module("rolesanywhere_host_state", {
            "path": str(states[host]), "certificate_path": str(cert), "updates": {"helper_impl": "python"}})
        assert result.changed
    inventory = tmp_path / "hosts.ini"
    lines = ["[fleet]"]
    lines += [f"{h} ansible_connection=local report_state_path={p}" for h, p in states.items()]
    lines += ["web03 ansible_connection=local report_state_path=" + str(tmp_path / "missing.fact")]
    inventory.write_text("\n".join(lines) + "\n")

    proc = run_playbook(REPO / "playbooks" / "report.yml", inventory=str(inventory),
                        extra_vars={"report_hosts": "fleet", "report_dir": str(tmp_path / "out")})

    rows = {row["host"]: row for row in json.loads((tmp_path / "out" / "report.json").read_text())}
    assert rows["web01"]["status"] == "ok" and rows["web01"]["helper_impl"] == "python"
    assert rows["web02"]["status"] == "due"
    assert rows["web03"]["status"] == "failed"
    csv_rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "report.csv").read_text())))
    assert [r["host"] for r in csv_rows] == ["web01", "web02", "web03"]
    assert "HOST" in proc.stdout and "web02" in proc.stdout
