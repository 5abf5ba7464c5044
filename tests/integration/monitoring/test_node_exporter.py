"""On a fleet host: enrol.yml leaves the metrics in node_exporter's Debian directory, Debian's
prometheus-node-exporter (run as its own user, listening on the host's bridge address only) serves them to the
controller, promtool accepts the scrape, a failed proof shows in the next scrape; report.yml joins what ra_local saw
of the host's certificate."""
import calendar
import json
import re
import time
import urllib.request

import pytest

from tests.fleet import netns_fleet
from tests.site import LocalSite
from tests.support.ansible import REPO, run_playbook
from tests.support.fleet import fleet  # noqa: F401

from .conftest import parse_metrics, promtool

pytestmark = [pytest.mark.fleet, pytest.mark.slow]
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"


def scrape(url, attempts=100):
    """The exporter's page once it answers (it starts in the background)."""
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def test_node_exporter_serves_the_textfile_to_the_controller(fleet, tmp_path):  # noqa: F811
    hosts = fleet(1)
    (name,) = hosts.names
    address = hosts.address(name)
    with LocalSite(tmp_path / "site") as site:
        inventory = netns_fleet.write_inventory(hosts.hosts, tmp_path / "inventory.yml", extra_vars=site.enrol_vars())
        run_playbook(REPO / "playbooks" / "enrol.yml", inventory=str(inventory))
        state = json.loads(hosts.run(name, "cat /etc/ansible/facts.d/rolesanywhere.fact").stdout)
        mode = hosts.run(name, f"stat -c '%a %U' {TEXTFILE_DIR}/rolesanywhere.prom").stdout.split()
        assert mode == ["644", "root"]

        started = hosts.run(name, f"setpriv --reuid=prometheus --regid=prometheus --init-groups "
                                  f"prometheus-node-exporter --web.listen-address={address}:9100 "
                                  f"--collector.disable-defaults --collector.textfile "
                                  f"--collector.textfile.directory={TEXTFILE_DIR} >/tmp/node-exporter.log 2>&1 "
                                  f"</dev/null & echo $!")
        pid = int(started.stdout.strip())
        try:
            text = scrape(f"http://{address}:9100/metrics")
            # A failed proof (a role the profile does not list): enrol records it, the next scrape shows it.
            failed = run_playbook(REPO / "playbooks" / "enrol.yml", inventory=str(inventory), check=False,
                                  extra_vars={"enrol_role_arn": site.arns["role_arn"] + "-not-in-the-profile"})
            assert failed.returncode != 0 and "could not be proven" in failed.stdout, failed.stdout[-3000:]
            after_failure = parse_metrics(scrape(f"http://{address}:9100/metrics"))
        finally:
            hosts.run(name, f"kill {pid}", check=False)
        checked = promtool("check", "metrics", stdin=text)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        samples = parse_metrics(text)
        assert samples[("node_textfile_scrape_error", ())] == 0  # the exporter's user could read the file
        # The label the rules' RolesAnywhereMetricsStale matches (docs/prometheus/rolesanywhere.rules.yml).
        mtimes = [dict(labels)["file"] for metric, labels in samples if metric == "node_textfile_mtime_seconds"]
        assert [f for f in mtimes if re.fullmatch(r"(.*/)?rolesanywhere.prom", f)], mtimes
        not_after = calendar.timegm(time.strptime(state["not_after"], "%Y-%m-%dT%H:%M:%SZ"))
        assert samples[("rolesanywhere_certificate_not_after_timestamp_seconds", ())] == not_after
        proven = calendar.timegm(time.strptime(state["last_verified_at"], "%Y-%m-%dT%H:%M:%SZ"))
        assert samples[("rolesanywhere_credentials_last_proof_timestamp_seconds", ())] == proven
        assert samples[("rolesanywhere_last_attempt_success", (("operation", "enrol"),))] == 1
        assert samples[("rolesanywhere_attempt_failures_total", (("operation", "enrol"),))] == 0
        assert samples[("rolesanywhere_host_status", (("status", "ok"),))] == 1
        assert samples[("rolesanywhere_helper_info", (("impl", "python"), ("version", state["helper_version"])))] == 1

        assert after_failure[("rolesanywhere_last_attempt_success", (("operation", "enrol"),))] == 0
        assert after_failure[("rolesanywhere_attempt_failures_total", (("operation", "enrol"),))] == 1
        assert after_failure[("rolesanywhere_host_status", (("status", "failed"),))] == 1
        assert after_failure[("rolesanywhere_credentials_last_proof_timestamp_seconds", ())] == proven

        admin = site.moto.admin
        run_playbook(REPO / "playbooks" / "report.yml", inventory=str(inventory),
                     extra_vars={"report_dir": str(tmp_path / "report"), "report_aws_subjects": True,
                                 "report_aws_endpoint_url": site.ra.url, "report_aws_region": site.moto.region},
                     env={"AWS_ACCESS_KEY_ID": admin.access_key_id, "AWS_SECRET_ACCESS_KEY": admin.secret_access_key})
    (row,) = json.loads((tmp_path / "report" / "report.json").read_text())
    # AWS saw the certificate (the first proof; the refused one counts as seen too); the host failed its last proof.
    assert row["host"] == name and row["status"] == "failed" and row["aws_last_seen_at"] and row["attention"] == ["failed"]
    assert (tmp_path / "report" / "report.html").stat().st_size > 0
