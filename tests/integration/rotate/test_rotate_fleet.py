"""rotate.yml and revoke.yml on a 3-host fleet: two certificates due, one not."""
import json

import pytest

from tests.support.ansible import REPO, run_playbook

from tests.support.ansible import recap

from .conftest import REVOKE

pytestmark = [pytest.mark.fleet, pytest.mark.slow]


def test_only_due_hosts_renew_all_keep_credentials_and_rerun_changes_nothing(mixed_site, tmp_path):
    due, not_due = mixed_site.names[:2], mixed_site.names[2]
    before = {name: mixed_site.state(name) for name in mixed_site.names}

    check = mixed_site.rotate(args=["--check"])
    assert all(v["failed"] == 0 for v in recap(check.stdout).values())
    assert {name: mixed_site.state(name) for name in mixed_site.names} == before, "check mode wrote the state"

    first = mixed_site.rotate()
    assert all(v["failed"] == 0 and v["unreachable"] == 0 for v in recap(first.stdout).values()), first.stdout[-6000:]
    after = {name: mixed_site.state(name) for name in mixed_site.names}
    for name in due:
        assert after[name]["serial"] != before[name]["serial"]
        assert after[name]["rotation_state"] == "renewed"
        current = after[name]["rotation"]["current"]
        assert current["key_label"].startswith("rolesanywhere-") and current["key_label"] == after[name]["key_label"]
        files = mixed_site.fleet.run(name, ["ls", "-1", "/etc/rolesanywhere-fleet"]).stdout.split()
        assert f"{current['name']}.pem" in files and "rolesanywhere.pem" not in files  # old one retired
        mode = mixed_site.fleet.run(name, ["stat", "-c", "%a", current["certificate"]]).stdout.strip()
        assert mode == "644"
    assert after[not_due]["serial"] == before[not_due]["serial"]
    assert after[not_due]["rotation_state"] == "ok"
    assert "pending" not in after[not_due]["rotation"]
    mixed_site.assert_all_get_credentials()

    rerun = mixed_site.rotate()
    assert all(v["changed"] == 0 and v["failed"] == 0 for v in recap(rerun.stdout).values()), rerun.stdout[-4000:]

    report_dir = tmp_path / "report"
    run_playbook(REPO / "playbooks" / "report.yml", inventory=str(mixed_site.inventory),
                 extra_vars={"report_dir": str(report_dir), "report_hosts": ",".join(mixed_site.names)})
    rows = {row["host"]: row for row in json.loads((report_dir / "report.json").read_text())}
    assert [rows[name]["status"] for name in due] == ["renewed", "renewed"]
    assert rows[not_due]["status"] == "ok"
    assert rows[due[0]]["serial"] == after[due[0]]["serial"]


def test_revoked_host_is_denied_and_the_others_are_not(mixed_site):
    site = mixed_site.site
    connection = {"endpoint_url": site.ra.url, "region": site.moto.region,
                  "access_key": site.moto.admin.access_key_id, "secret_key": site.moto.admin.secret_access_key}
    revoked, others = mixed_site.names[0], mixed_site.names[1:]
    mixed_site.assert_all_get_credentials()
    # A retired certificate (the one enrol issued) of another host, by serial: its current one still works.
    issued = json.loads((site.ca_directory / "ca.db.json").read_text())["certificates"]
    current = mixed_site.state(others[0])["serial"]
    retired_serial = next(c["serial"] for c in issued
                          if c["subject"].startswith(f"CN={others[0]},") and c["serial"] != current)
    by_serial = run_playbook(REVOKE, inventory=str(mixed_site.inventory), extra_vars={
        "revoke_serials": [retired_serial], "revoke_aws_connection": connection,
        "revoke_check_hosts": ",".join(mixed_site.names)}, check=False)
    assert by_serial.returncode == 0, by_serial.stdout[-6000:]
    mixed_site.assert_all_get_credentials()

    by_host = run_playbook(REVOKE, inventory=str(mixed_site.inventory), extra_vars={
        "revoke_targets": [revoked], "revoke_aws_connection": connection,
        "revoke_check_hosts": ",".join(mixed_site.names)}, check=False)
    assert by_host.returncode == 0, by_host.stdout[-6000:]
    assert "refused (AccessDeniedException)" in by_host.stdout
    denied = mixed_site.fleet.run(revoked, ["aws", "sts", "get-caller-identity", "--profile", "ra", "--endpoint-url",
                                           site.gate.url], check=False)
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr, denied.stderr
    for name in others:
        assert ":assumed-role/" in mixed_site.identity_arn(name)
    database = json.loads((site.ca_directory / "ca.db.json").read_text())["certificates"]
    revoked_subjects = {c["subject"].split(",")[0] for c in database if c["status"] == "revoked"}
    assert f"CN={revoked}" in revoked_subjects
    # Both of the revoked host's certificates (current and retired) are revoked.
    assert sum(c["status"] == "revoked" for c in database if c["subject"].startswith(f"CN={revoked},")) == 2
