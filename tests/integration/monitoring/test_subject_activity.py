"""Roles Anywhere's subject activity (ra_local's ListSubjects/GetSubject, recorded on CreateSession) read by
rolesanywhere_subject_info and joined into report.yml: hosts whose certificate AWS has not seen are marked."""
import datetime
import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.rolesanywhere.fleet.plugins.filter.report import report_assess
from tests.support.ansible import REPO, run_module, run_playbook
from tests.support.aws import provision
from tests.support.ca import issue_client_cert


def enrolled_host(tmp_path, ca, name):
    key = ec.generate_private_key(ec.SECP256R1())
    key_path = tmp_path / f"{name}.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert = issue_client_cert(ca, key.public_key(), subject={"O": "Example", "CN": name}, path=tmp_path / f"{name}.pem")
    state = tmp_path / f"{name}.fact"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert run_module("rolesanywhere_host_state", {
        "path": str(state), "certificate_path": str(tmp_path / f"{name}.pem"), "metrics_dir": "",
        "updates": {"last_verified_at": now, "last_error": None}}).changed
    return key_path, format(cert.serial_number, "x"), state


def test_hosts_aws_has_not_seen_are_marked(ra_endpoint, file_ca, tmp_path):
    arns = provision(ra_endpoint, file_ca.pem())
    hosts = {name: enrolled_host(tmp_path, file_ca, name) for name in ("web01", "web02")}
    key_path, serial, _ = hosts["web01"]
    session = run_module("rolesanywhere_session", {
        "certificate": str(tmp_path / "web01.pem"), "private_key": str(key_path), "endpoint": ra_endpoint.url,
        "region": ra_endpoint.region, "trust_anchor_arn": arns["trust_anchor_arn"],
        "profile_arn": arns["profile_arn"], "role_arn": arns["role_arn"]})
    assert not session.failed, session

    admin = ra_endpoint.moto.admin
    connection = {"endpoint_url": ra_endpoint.url, "region": ra_endpoint.region,
                  "access_key": admin.access_key_id, "secret_key": admin.secret_access_key}
    info = run_module("rolesanywhere_subject_info", connection, check_mode=True)
    assert not info.failed and not info.changed, info
    seen = {s["x509_subject"]: s for s in info["subjects"]}
    web01 = seen["CN=web01,O=Example"]
    assert web01["last_seen_at"] and web01["subject_arn"].startswith("arn:aws:rolesanywhere:")
    assert [c["serial_number"] for c in web01["credentials"]] == [serial]
    assert web01["credentials"][0]["seen_at"] == web01["last_seen_at"] and web01["credentials"][0]["failed"] is False
    assert "CN=web02,O=Example" not in seen

    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[fleet]\n" + "".join(
        f"{name} ansible_connection=local report_state_path={state}\n" for name, (_, _, state) in hosts.items()))
    run_playbook(REPO / "playbooks" / "report.yml", inventory=str(inventory),
                 extra_vars={"report_hosts": "fleet", "report_dir": str(tmp_path / "out"), "report_aws_subjects": True,
                             "report_aws_endpoint_url": ra_endpoint.url, "report_aws_region": ra_endpoint.region},
                 env={"AWS_ACCESS_KEY_ID": admin.access_key_id, "AWS_SECRET_ACCESS_KEY": admin.secret_access_key})
    rows = {row["host"]: row for row in json.loads((tmp_path / "out" / "report.json").read_text())}
    assert rows["web01"]["aws_last_seen_at"] == web01["last_seen_at"] and rows["web01"]["attention"] == []
    assert rows["web02"]["aws_last_seen_at"] is None and rows["web02"]["attention"] == ["unseen"]

    # A week and a day later, web01 has not been seen for longer than report_unseen_after (7d).
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    aged = report_assess(list(rows.values()), stale_after="30d", subjects=info["subjects"], unseen_after="7d", now=later)
    assert [row["attention"] for row in aged] == [["unseen"], ["unseen"]]


def test_subjects_match_by_name_and_serial():
    subjects = [{"x509_subject": "O=Example, CN=web01", "last_seen_at": "2026-12-01T00:00:00Z",
                 "credentials": [{"serial_number": "abc", "seen_at": "2026-11-30T00:00:00Z"}]},
                {"x509_subject": "CN=web02,O=Example", "last_seen_at": "2026-12-01T00:00:00Z"}]
    rows = [{"host": "a", "status": "ok", "subject": "CN=web01,O=Example", "serial": "abc",
             "last_verified_at": "2026-12-01T00:00:00Z"},
            {"host": "b", "status": "ok", "subject": "CN=web01,O=Example", "serial": "def",
             "last_verified_at": "2026-12-01T00:00:00Z"},
            {"host": "c", "status": "ok", "subject": "CN=web02,O=Example", "serial": "123",
             "last_verified_at": "2026-12-01T00:00:00Z"}]
    assessed = report_assess(rows, subjects=subjects, now="2026-12-01T12:00:00Z")
    assert [row["aws_last_seen_at"] for row in assessed] == ["2026-11-30T00:00:00Z", None, "2026-12-01T00:00:00Z"]
    assert [row["attention"] for row in assessed] == [[], ["unseen"], []]
