"""Class 1: a user swaps ~/.aws or ~/.config for a link DURING a run, between two tasks of one play (localhost and
a fleet host) and at exact points inside one module run (localhost). See user_swaps.py."""
import json
import os
import secrets
import subprocess
import sys
import threading
import time

import pytest

from tests.integration.security.test_user_links import Localhost
from tests.integration.security.test_user_links_fleet import FleetHost
from tests.integration.security.user_links import (
    credential_args, places, setup, state, teardown, user_readable_with)
from tests.integration.security.user_swaps import (
    HOOKED_MODULE, outcome, pin_args, play_with_swap, swap_command)
from tests.support.ansible import REPO, ansible_env, run_module

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="creates a local user and runs modules as root")
REFUSED = "symbolic link owned by uid"


@pytest.fixture
def local_user():
    target, user = Localhost(), "raswp" + secrets.token_hex(3)
    secret, home = setup(target, user)
    try:
        yield target, user, home, secret
    finally:
        teardown(target, user)


def assert_nothing_outside(target, user, home, secret, before):
    assert state(target, user) == before, "something outside the user's tree changed"
    assert user_readable_with(target, user, home, secret) == ""


def play_and_swap(target, user, home, tmp_path, inventory, signal_dir):
    """Runs the play; swaps both directories (as the user) when it signals; returns the second writes' outcome."""
    playbook = tmp_path / "swap.yml"
    playbook.write_text(json.dumps(play_with_swap(user, home, signal_dir)))
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", inventory, str(playbook)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ansible_env())
    output = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout))
    reader.start()
    try:
        while target.sh(f"test -e {signal_dir}/ready && echo yes || true").strip() != "yes":
            assert proc.poll() is None, "".join(output)[-6000:]
            time.sleep(0.3)
        assert target.sh(f"stat -c %U {home}/.aws/config {home}/.config/ra/pin").split() == [user, user]
        target.sh(swap_command(user, home, [".aws", ".config"]), user=user)
        target.sh(f"touch {signal_dir}/go")
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join()
    return outcome("".join(output)), "".join(output)


def check_play_outcome(target, user, home, secret, before, result, output):
    assert result["config"].startswith(f"{home}/.aws is a {REFUSED}"), (result, output[-4000:])
    assert result["pin"].startswith(f"{home}/.config is a {REFUSED}"), (result, output[-4000:])
    assert "Traceback" not in output
    assert_nothing_outside(target, user, home, secret, before)
    # the first writes are where they were, untouched by the refused second ones
    assert "ra-second" not in target.sh(f"cat {home}/.aws-moved/config")
    assert target.sh(f"cat {home}/.config-moved/ra/pin") == "97315"


@root_only
def test_swap_between_two_tasks_of_one_play_on_localhost(local_user, tmp_path):
    target, user, home, secret = local_user
    before = state(target, user)
    signal_dir = tmp_path / "signal"
    signal_dir.mkdir(mode=0o700)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    result, output = play_and_swap(target, user, home, tmp_path, str(inventory), signal_dir)
    check_play_outcome(target, user, home, secret, before, result, output)


@pytest.mark.fleet
@pytest.mark.slow
def test_swap_between_two_tasks_of_one_play_on_a_fleet_host(fleet, tmp_path):  # noqa: F811
    from tests.fleet import netns_fleet

    hosts = fleet(1)
    target, user = FleetHost(hosts, hosts.names[0]), "raswp" + secrets.token_hex(3)
    secret, home = setup(target, user)
    signal_dir = f"/root/swap-{user}"
    try:
        target.sh(f"install -d -m 0700 {signal_dir}")
        before = state(target, user)
        inventory = netns_fleet.write_inventory(hosts.hosts, tmp_path / "inventory.yml")
        result, output = play_and_swap(target, user, home, tmp_path, str(inventory), signal_dir)
        check_play_outcome(target, user, home, secret, before, result, output)
    finally:
        teardown(target, user)
        target.sh(f"rm -rf {signal_dir}")


def hooked_run(module, args, trigger, kind, swap, user, tmp_path):
    args_path = tmp_path / "args.json"
    args_path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc = subprocess.run(
        [sys.executable, "-c", HOOKED_MODULE, f"ansible_collections.rolesanywhere.fleet.plugins.modules.{module}",
         str(args_path), trigger, kind, swap, user],
        capture_output=True, text=True, env=ansible_env(), timeout=120, check=False)
    assert "FIRED ['" in proc.stderr, f"the swap never happened:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout), proc


@root_only
@pytest.mark.parametrize("module, moment", [
    ("aws_credential_process", "walk"), ("aws_credential_process", "write"),
    ("owned_path", "walk"), ("owned_path", "write")])
def test_swap_inside_one_module_run(local_user, tmp_path, module, moment):
    """walk: the directory is swapped after the walk saw it and before it opens it -> refused, nothing written.
    write: swapped after it was opened and before the file is created -> written into the user's own (moved)
    directory through the descriptor, nothing through the link."""
    target, user, home, secret = local_user
    directory, name, args = {
        "aws_credential_process": (".aws", "config", dict(credential_args(user, home), profile="ra-swapped")),
        "owned_path": (".config", "ra/pin", dict(pin_args(user, home), content="13579")),
    }[module]
    first = run_module(module, dict(args, profile="ra") if module != "owned_path" else dict(args, content="97315"))
    assert not first.get("failed"), first
    before = state(target, user)
    trigger, kind = (directory, "dir") if moment == "walk" else ("." + name.rsplit("/", 1)[-1] + ".", "tmp")
    result, proc = hooked_run(module, args, trigger, kind, swap_command(user, home, [directory]), user, tmp_path)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert_nothing_outside(target, user, home, secret, before)
    assert target.sh(f"readlink {home}/{directory}").strip() == places(user)[2]
    written = target.sh(f"cat {home}/{directory}-moved/{name}")
    if moment == "walk":
        assert result.get("failed") and "replaced by a symbolic link or a file during the run" in result["msg"], result
        assert "ra-swapped" not in written and "13579" not in written
    else:
        assert not result.get("failed"), result
        assert "ra-swapped" in written or written == "13579", written
        mode = target.sh(f"stat -c '%U %a' {home}/{directory}-moved/{name}").split()
        assert mode == [user, "600"]
