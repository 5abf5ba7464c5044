"""Run the collection's modules and playbooks the way Ansible does, from pytest.

Modules run as real processes (``python -m ansible_collections.rolesanywhere.fleet.plugins.modules.X``
with an args file), so a module crash, a segfault or a leaked secret shows exactly as it would on a host.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / ".work" / "collections"
COLLECTION_LINK = COLLECTIONS / "ansible_collections" / "rolesanywhere" / "fleet"


def signing_helper_modules():
    """The module_utils files the bundled helper runs, as the role signing_helper lists them."""
    import yaml

    return yaml.safe_load((REPO / "roles" / "signing_helper" / "vars" / "main.yml").read_text())["__signing_helper_modules"]


def ensure_collection_link():
    COLLECTION_LINK.parent.mkdir(parents=True, exist_ok=True)
    if not COLLECTION_LINK.is_symlink():
        try:
            COLLECTION_LINK.symlink_to(REPO)
        except FileExistsError:  # another pytest-xdist worker made it first
            pass
    return COLLECTIONS


def ansible_env(extra=None):
    ensure_collection_link()
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(COLLECTIONS),
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_ROLES_PATH=str(REPO / "roles"),
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    env.update(extra or {})
    return env


class ModuleResult(dict):
    """The module's JSON result, plus the process's rc and stderr."""

    @property
    def changed(self):
        return bool(self.get("changed"))

    @property
    def failed(self):
        return bool(self.get("failed"))


def run_module(name, args, check_mode=False, diff=False, env=None, timeout=120):
    """Run rolesanywhere.fleet.<name> with ``args``; return its parsed result.

    A result that is not JSON (a traceback, a segfault) raises AssertionError with the output.
    """
    module_args = dict(args)
    module_args["_ansible_check_mode"] = check_mode
    module_args["_ansible_diff"] = diff
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"ANSIBLE_MODULE_ARGS": module_args}, fh)
        args_path = fh.name
    try:
        proc = subprocess.run(
            [sys.executable, "-m", f"ansible_collections.rolesanywhere.fleet.plugins.modules.{name}", args_path],
            capture_output=True,
            text=True,
            env=ansible_env(env),
            timeout=timeout,
        )
    finally:
        os.unlink(args_path)
    try:
        result = ModuleResult(json.loads(proc.stdout))
    except json.JSONDecodeError:
        raise AssertionError(
            f"module {name} returned no JSON (rc={proc.returncode})\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        ) from None
    result["rc"] = proc.returncode
    result["stderr"] = proc.stderr
    result["raw_stdout"] = proc.stdout
    return result


def run_playbook(playbook, inventory="localhost,", extra_vars=None, env=None, args=(), timeout=900, check=True):
    """Run ansible-playbook; return the CompletedProcess. ``check`` asserts rc == 0."""
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", inventory, str(playbook)]  # this venv's core
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    cmd += list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(env), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"ansible-playbook failed rc={proc.returncode}\n{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}")
    return proc


RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def recap(stdout):
    """PLAY RECAP counts by host: {host: {ok, changed, unreachable, failed}}."""
    return {m.group(1): dict(ok=int(m.group(2)), changed=int(m.group(3)), unreachable=int(m.group(4)),
                             failed=int(m.group(5))) for m in RECAP.finditer(stdout)}
