"""ra_local as a process: one line when listening, clean SIGTERM stop, state kept across restarts, refusals
of unsafe or incomplete command lines."""
import os
import signal
import subprocess
import sys

from tests.support.aws import REPO, start_ra_local


def test_state_survives_a_sigterm_restart(moto_server, tmp_path):
    state = tmp_path / "state.json"
    endpoint = start_ra_local(moto_server, tmp_path, state=state)
    client = endpoint.client()
    profile = client.create_profile(name="persisted", roleArns=["arn:aws:iam::123456789012:role/p"],
                                    tags=[{"key": "k", "value": "v"}])["profile"]
    os.kill(endpoint.pid, signal.SIGTERM)
    assert endpoint.proc.wait(10) == 0
    endpoint.stop()  # already exited: only releases its stdout pipe
    assert oct(state.stat().st_mode & 0o777) == "0o600"

    restarted = start_ra_local(moto_server, tmp_path, state=state)
    try:
        client = restarted.client()
        assert client.get_profile(profileId=profile["profileId"])["profile"]["name"] == "persisted"
        assert client.list_tags_for_resource(resourceArn=profile["profileArn"])["tags"] == [{"key": "k", "value": "v"}]
    finally:
        restarted.stop()
    assert restarted.proc.returncode == 0


def run_main(*args):
    return subprocess.run([sys.executable, "-m", "ra_local", *args], cwd=REPO, capture_output=True, text=True, timeout=30)


def test_wildcard_bind_half_tls_and_corrupt_state_are_refused(tmp_path):
    done = run_main("--host", "0.0.0.0", "--aws-endpoint", "http://127.0.0.1:1")
    assert done.returncode == 2 and "not a wildcard" in done.stderr
    done = run_main("--aws-endpoint", "http://127.0.0.1:1", "--tls-cert", "x.pem")
    assert done.returncode == 2 and "--tls-cert and --tls-key go together" in done.stderr
    state = tmp_path / "state.json"
    state.write_text("{truncated")
    done = run_main("--aws-endpoint", "http://127.0.0.1:1", "--state", str(state))
    assert done.returncode == 2 and f"state file {state} is not JSON" in done.stderr
    assert state.read_text() == "{truncated"
