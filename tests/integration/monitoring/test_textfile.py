"""The node_exporter textfile written by the host-state and rotation modules: format (promtool), values after
enrolment, a failed proof and rotation, atomic replacement, permissions and links."""
import calendar
import datetime
import json
import os
import stat
import time

import pytest

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _metrics
from ansible_collections.rolesanywhere.fleet.plugins.module_utils._host_state import certificate_summary
from tests.support.ansible import run_module
from tests.unit.plugins.module_utils.test_host_state import make_cert

from .conftest import parse_metrics, promtool

PROM = "rolesanywhere.prom"


def epoch(iso):
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


def read_metrics(directory):
    text = (directory / PROM).read_text()
    checked = promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return parse_metrics(text)


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def enrolled_files(tmp_path):
    cert = tmp_path / "host.pem"
    cert.write_bytes(make_cert(90))
    return cert, tmp_path / "state.fact", tmp_path / "metrics"


def test_enrolment_then_failed_proof_then_recovery(enrolled_files):
    cert, state, metrics = enrolled_files
    summary = certificate_summary(cert.read_bytes())
    proven_at = "2026-12-01T10:00:00Z"
    base = {"path": str(state), "certificate_path": str(cert), "metrics_dir": str(metrics)}
    before = datetime.datetime.now(datetime.timezone.utc)
    enrolled = run_module("rolesanywhere_host_state", dict(base, updates={
        "helper_impl": "python", "helper_version": "0.3.1", "last_verified_at": proven_at, "last_error": None}))
    assert enrolled["metrics_path"] == str(metrics / PROM)
    assert stat.S_IMODE(os.stat(metrics).st_mode) == 0o755  # created: the exporter's user can enter it
    samples = read_metrics(metrics)
    assert value(samples, "rolesanywhere_certificate_not_after_timestamp_seconds") == epoch(summary["not_after"])
    assert value(samples, "rolesanywhere_certificate_not_before_timestamp_seconds") == epoch(summary["not_before"])
    assert value(samples, "rolesanywhere_certificate_lifetime_seconds") == 90 * 86400
    left = value(samples, "rolesanywhere_certificate_remaining_seconds")
    assert 0 < left <= epoch(summary["not_after"]) - before.timestamp() + 1
    assert value(samples, "rolesanywhere_credentials_last_proof_timestamp_seconds") == epoch(proven_at)
    assert value(samples, "rolesanywhere_last_attempt_success", operation="enrol") == 1
    assert value(samples, "rolesanywhere_last_attempt_timestamp_seconds", operation="enrol") >= int(before.timestamp())
    assert value(samples, "rolesanywhere_attempt_failures_total", operation="enrol") == 0
    assert value(samples, "rolesanywhere_attempt_failures_total", operation="rotation") == 0
    assert value(samples, "rolesanywhere_host_status", status="ok") == 1
    assert value(samples, "rolesanywhere_host_status", status="failed") == 0
    assert value(samples, "rolesanywhere_helper_info", impl="python", version="0.3.1") == 1
    inode = os.stat(metrics / PROM).st_ino

    failed_at = "2026-12-02T08:30:00Z"
    failed = run_module("rolesanywhere_host_state", {"path": str(state), "metrics_dir": str(metrics), "updates": {
        "last_attempt_at": failed_at, "last_error": "CreateSession failed: AccessDeniedException"}})
    assert failed.changed
    samples = read_metrics(metrics)
    assert value(samples, "rolesanywhere_last_attempt_success", operation="enrol") == 0
    assert value(samples, "rolesanywhere_last_attempt_timestamp_seconds", operation="enrol") == epoch(failed_at)
    assert value(samples, "rolesanywhere_attempt_failures_total", operation="enrol") == 1
    assert value(samples, "rolesanywhere_host_status", status="failed") == 1
    assert value(samples, "rolesanywhere_credentials_last_proof_timestamp_seconds") == epoch(proven_at)
    assert os.stat(metrics / PROM).st_ino != inode  # replaced by a rename, never rewritten in place
    assert os.listdir(metrics) == [PROM]  # no temporary file left behind

    run_module("rolesanywhere_host_state", dict(base, updates={"last_verified_at": proven_at, "last_error": None}))
    samples = read_metrics(metrics)
    assert value(samples, "rolesanywhere_last_attempt_success", operation="enrol") == 1
    assert value(samples, "rolesanywhere_attempt_failures_total", operation="enrol") == 1  # a counter never drops


def test_state_check_refreshes_the_metrics_and_check_mode_writes_none(enrolled_files):
    cert, state, metrics = enrolled_files
    checked = run_module("rolesanywhere_host_state", {"path": str(state), "certificate_path": str(cert),
                                                      "metrics_dir": str(metrics)}, check_mode=True)
    assert checked["metrics_path"] is None and not metrics.exists()
    run_module("rolesanywhere_host_state", {"path": str(state), "certificate_path": str(cert), "metrics_dir": ""})
    assert not metrics.exists()
    queried = run_module("rolesanywhere_host_state", {"path": str(state), "state": "query",
                                                      "metrics_dir": str(metrics)})
    assert not queried.changed and queried["metrics_path"] == str(metrics / PROM)
    assert value(read_metrics(metrics), "rolesanywhere_host_status", status="ok") == 1


def test_rotation_success_and_failure(tmp_path):
    pki, metrics = tmp_path / "pki", tmp_path / "metrics"
    pki.mkdir()
    (pki / "rolesanywhere.pem").write_bytes(make_cert(90))
    args = {"run_id": "run-1", "path": str(tmp_path / "state.fact"), "host": "host1", "pki_dir": str(pki),
            "lock_ttl": 30, "lock_wait": 2, "metrics_dir": str(metrics)}

    def rotation(**extra):
        result = run_module("rolesanywhere_rotation", dict(args, **extra))
        assert not result.get("failed"), result
        return result

    rotation(action="begin", renew_before="5d")  # not due: an attempt with nothing to do
    samples = read_metrics(metrics)
    assert value(samples, "rolesanywhere_last_attempt_success", operation="rotation") == 1
    assert value(samples, "rolesanywhere_rotation_state", state="ok") == 1
    assert value(samples, "rolesanywhere_rotation_state", state="failed") == 0

    plan = rotation(action="begin", force=True, run_id="run-2")["plan"]
    args["run_id"] = "run-2"
    rotation(action="install", certificate_pem=make_cert(120).decode())
    rotation(action="switched")
    rotation(action="finish")
    samples = read_metrics(metrics)
    state = json.loads((tmp_path / "state.fact").read_text())
    assert value(samples, "rolesanywhere_rotation_state", state="renewed") == 1
    assert value(samples, "rolesanywhere_certificate_lifetime_seconds") == 120 * 86400
    assert value(samples, "rolesanywhere_credentials_last_proof_timestamp_seconds") == epoch(state["last_verified_at"])
    assert value(samples, "rolesanywhere_last_attempt_timestamp_seconds", operation="rotation") == epoch(
        state["last_attempt_at"])

    args["run_id"] = "run-3"
    rotation(action="begin", force=True)
    rotation(action="fail", error="issue: the CA did not answer")
    samples = read_metrics(metrics)
    assert value(samples, "rolesanywhere_rotation_state", state="failed") == 1
    assert value(samples, "rolesanywhere_last_attempt_success", operation="rotation") == 0
    assert value(samples, "rolesanywhere_attempt_failures_total", operation="rotation") == 1
    assert value(samples, "rolesanywhere_host_status", status="failed") == 1


def test_permissions_and_links(tmp_path):
    metrics, victim = tmp_path / "metrics", tmp_path / "victim"
    metrics.mkdir()
    victim.write_text("keep\n")
    (metrics / PROM).symlink_to(victim)
    old_umask = os.umask(0o077)
    try:
        written = _metrics.write_textfile(str(metrics), "rolesanywhere_test 1\n")
    finally:
        os.umask(old_umask)
    assert written == str(metrics / PROM)
    assert not (metrics / PROM).is_symlink() and victim.read_text() == "keep\n"  # the link is replaced, not followed
    assert stat.S_IMODE(os.stat(metrics / PROM).st_mode) == 0o644

    linked = tmp_path / "linked"
    linked.symlink_to(metrics)
    with pytest.raises(OSError, match="not a link"):
        _metrics.write_textfile(str(linked), "rolesanywhere_test 1\n")
    result = run_module("rolesanywhere_host_state", {"path": str(tmp_path / "s.fact"), "metrics_dir": str(linked)})
    assert not result.failed and "metrics not written" in json.dumps(result.get("warnings"))


def test_default_directory_only_when_node_exporter_installed(tmp_path, monkeypatch):
    state = {"not_after": "2027-01-01T00:00:00Z"}
    now = datetime.datetime.now(datetime.timezone.utc)
    monkeypatch.setattr(_metrics, "DEFAULT_DIR", str(tmp_path / "node-exporter"))
    assert _metrics.publish(state, "ok", now) is None and not (tmp_path / "node-exporter").exists()
    (tmp_path / "node-exporter").mkdir()
    assert _metrics.publish(state, "ok", now) == str(tmp_path / "node-exporter" / PROM)
    assert _metrics.publish(state, "ok", now, metrics_dir="") is None


def test_label_values_are_escaped():
    now = datetime.datetime.now(datetime.timezone.utc)
    text = _metrics.render({"helper_impl": 'a"b\\c\nd', "helper_version": "1"}, None, now)
    assert promtool("check", "metrics", stdin=text).returncode == 0
    assert value(parse_metrics(text), "rolesanywhere_helper_info", impl='a\\"b\\\\c\\nd', version="1") == 1
