"""Rotation runs killed at every step, failing steps, and two runs at once, on a 2-host fleet whose
certificates are due: every host keeps working credentials throughout."""
import re
import threading

import pytest

from tests.support.ansible import run_playbook

from tests.support.ansible import recap

from .conftest import ROTATE, ROTATE_VARS, TOKEN_DIR

pytestmark = [pytest.mark.fleet, pytest.mark.slow]

# Each run is killed when the banner of the named task shows, i.e. right after the step before it.
KILL_POINTS = [
    "Key pair on the token",                               # after the decision (new names cleared)
    "This host's request for the own CA",                  # after keygen and the CSR
    "Install the new certificate",                         # after issuance
    "Check that each profile gets credentials",            # installed and proven (journal: switching)
]


def token_objects(rotate_site, name):
    return rotate_site.fleet.run(name, f"find {TOKEN_DIR} -name '*.object' | wc -l").stdout.strip()


def test_killed_at_every_step_hosts_keep_credentials_and_the_next_run_finishes(due_site):
    names = due_site.names
    before = {name: due_site.state(name) for name in names}
    objects = {name: token_objects(due_site, name) for name in names}
    for point in KILL_POINTS:
        due_site.rotate_killed_at(point)
        due_site.assert_all_get_credentials()
        for name in names:  # the journal always says where the run stopped, or that the switch is done
            assert due_site.state(name)["rotation_state"] in ("due", "renewed"), point

    final = due_site.rotate()
    assert all(v["failed"] == 0 for v in recap(final.stdout).values()), final.stdout[-6000:]
    due_site.assert_all_get_credentials()
    for name in names:
        state = due_site.state(name)
        assert state["rotation_state"] == "renewed" and state["serial"] != before[name]["serial"]
        assert set(state["rotation"]) == {"current", "discard"} and state["rotation"]["discard"] == []
        # One key pair again: the discarded generations and the retired one are gone from the token and disk.
        assert token_objects(due_site, name) == objects[name]
        files = due_site.fleet.run(name, ["ls", "-1", "/etc/rolesanywhere-fleet"]).stdout.split()
        generations = {f.split(".")[0] for f in files if f.startswith("rolesanywhere")}
        assert generations == {state["rotation"]["current"]["name"]}, files

    rerun = due_site.rotate()
    assert all(v["changed"] == 0 and v["failed"] == 0 for v in recap(rerun.stdout).values()), rerun.stdout[-4000:]


def assert_failed_unchanged(rotate_site, name, footprint, result, message):
    assert recap(result.stdout)[name]["failed"] == 1, result.stdout[-6000:]
    assert rotate_site.footprint(name) == footprint
    state = rotate_site.state(name)
    assert state["rotation_state"] == "failed" and re.search(message, state["last_error"]), state["last_error"]
    assert state["stuck_since"] and "pending" not in state["rotation"]
    # Only keys that could not be deleted stay queued; none was made here.
    assert not any(g["delete_key"] for g in state["rotation"]["discard"])
    rotate_site.assert_all_get_credentials()


def test_wrong_pin_leaves_the_host_unchanged_and_reports_failed(due_site):
    name = due_site.names[0]
    due_site.fleet.run(name, "install -m 0600 /dev/null /root/wrong.pin && printf 9999-wrong > /root/wrong.pin")
    footprint = due_site.footprint(name)
    result = due_site.rotate({"rotate_force": True, "rotate_hosts": name, "rotate_token_pin_file": "/root/wrong.pin"},
                             check=False)
    assert_failed_unchanged(due_site, name, footprint, result, "PIN .* was rejected")
    assert "9999-wrong" not in result.stdout


def test_full_token_leaves_the_host_unchanged_and_reports_failed(due_site):
    name = due_site.names[1]
    # The token's storage is a small tmpfs with no room left: SoftHSM cannot store a new key.
    due_site.fleet.run(name, f"cp -a {TOKEN_DIR} /root/tokens.saved && mount -t tmpfs -o size=256k tokens {TOKEN_DIR} "
                             f"&& cp -a /root/tokens.saved/. {TOKEN_DIR}/ "
                             f"&& (dd if=/dev/zero of={TOKEN_DIR}/fill bs=4k 2>/dev/null; true)")
    try:
        footprint = due_site.footprint(name)
        result = due_site.rotate({"rotate_force": True, "rotate_hosts": name}, check=False)
        assert_failed_unchanged(due_site, name, footprint, result, "Key pair on the token")
    finally:
        due_site.fleet.run(name, f"umount {TOKEN_DIR} && rm -rf /root/tokens.saved")
    result = due_site.rotate({"rotate_force": True, "rotate_hosts": name})
    assert due_site.state(name)["rotation_state"] == "renewed"


def test_unreachable_issuer_leaves_the_host_unchanged_and_reports_failed(due_site):
    name = due_site.names[0]
    footprint = due_site.footprint(name)
    # The CA host is an address on the test bridge where nothing listens.
    result = due_site.rotate({"rotate_force": True, "rotate_hosts": name, "rotate_ca_host": "10.213.0.254"},
                             check=False)
    assert_failed_unchanged(due_site, name, footprint, result, "issuer|CA host|unreachable|UNREACHABLE")


def test_two_runs_at_once_take_turns(due_site):
    name = due_site.names[0]
    results = []

    def run():
        extra_vars = dict(ROTATE_VARS, rotate_force=True, rotate_hosts=name, rotate_lock_ttl=60)
        results.append(run_playbook(ROTATE, inventory=str(due_site.inventory), args=["-v"], check=False,
                                    extra_vars=extra_vars))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.returncode == 0 for r in results), [re.findall(r"fatal: .*", r.stdout) for r in results]
    waited = sorted(float(m) for r in results for m in re.findall(r'"waited": ([\d.]+)', r.stdout))
    assert waited[0] == 0.0 and waited[1] > 1.0, waited  # one run waited for the other to finish
    state = due_site.state(name)
    assert state["rotation_state"] == "renewed" and set(state["rotation"]) == {"current", "discard"}
    assert token_objects(due_site, name) == token_objects(due_site, due_site.names[1])
    due_site.assert_all_get_credentials()


def test_failure_after_the_switch_rolls_back(due_site):
    name = due_site.names[1]
    # A second profile whose user cannot read the token PIN: its credential_process fails once the configs
    # are switched, so the run must point both profiles back and delete the new generation.
    due_site.fleet.run(name, "id app >/dev/null 2>&1 || useradd -m app")
    profiles = [{"user": "root", "profile": "ra"}, {"user": "app", "profile": "ra"}]
    extra = {"rotate_force": True, "rotate_hosts": name, "rotate_credential_profiles": profiles}
    due_site.rotate(dict(extra, rotate_credential_profiles=profiles[:1]))  # a clean state to compare with
    footprint = due_site.footprint(name)
    current = due_site.state(name)["rotation"]["current"]

    result = due_site.rotate(extra, check=False)
    assert "Point the profiles back at the current generation" in result.stdout
    state = due_site.state(name)
    assert state["rotation_state"] == "failed" and "profile 'ra' of app" in state["last_error"], state["last_error"]
    assert state["rotation"]["current"] == current and "pending" not in state["rotation"]
    assert due_site.footprint(name) == footprint  # root's config, token objects and files as before
    app_config = due_site.fleet.run(name, ["cat", "/home/app/.aws/config"]).stdout
    assert current["certificate"] in app_config
    due_site.assert_all_get_credentials()
