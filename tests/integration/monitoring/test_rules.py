"""The Prometheus alerting rules shipped in docs/: promtool accepts them, their unit tests pass (certificate
expires within 7 days, no successful proof for 24 h, a failed attempt), docs/monitoring.md shows them verbatim,
and every rolesanywhere_* metric they use is one the hosts write."""
import datetime
import re

import yaml

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _metrics
from tests.support.ansible import REPO

from .conftest import parse_metrics, promtool

RULES = REPO / "docs" / "prometheus" / "rolesanywhere.rules.yml"
RULE_TESTS = REPO / "tests" / "integration" / "monitoring" / "rules_test.yml"


def test_rules_are_valid_and_their_unit_tests_pass():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    tested_alerts = {t["alertname"] for group in yaml.safe_load(RULE_TESTS.read_text())["tests"]
                     for t in group["alert_rule_test"]}
    assert {"RolesAnywhereCertificateExpiresSoon", "RolesAnywhereNoRecentProof"} <= tested_alerts


def test_docs_show_the_rules_file():
    assert RULES.read_text().strip() in (REPO / "docs" / "monitoring.md").read_text()


def test_rules_use_only_metrics_the_hosts_write():
    state = {"not_after": "2027-01-01T00:00:00Z", "not_before": "2026-01-01T00:00:00Z", "lifetime_seconds": 1,
             "last_verified_at": "2026-12-01T00:00:00Z", "rotation_state": "ok", "helper_impl": "python",
             "attempts": {"enrol": {"last_at": "2026-12-01T00:00:00Z", "success": True, "failures": 0}}}
    written = {name for name, _ in parse_metrics(_metrics.render(state, "ok", datetime.datetime.now(
        datetime.timezone.utc)))}
    used = set(re.findall(r"rolesanywhere_[a-z_]+", " ".join(
        rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"])))
    assert used and used <= written
