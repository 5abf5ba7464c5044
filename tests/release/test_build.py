"""The built collection holds only what works from an installed copy, and works from one."""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.support.ansible import REPO

BIN = Path(sys.executable).parent
REPOSITORY_ONLY = ("tests/", "extensions/", "bench/", "ra_local/", "aws_gate/", ".work/", ".venv",
                   "docs/ra_local.md", "docs/aws-gate.md", "docs/test-fleet.md", "docs/contributing.md",
                   ".ansible-lint", "Makefile", "pytest.ini")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(REPO)],
                   check=True, capture_output=True, text=True, timeout=300)
    [path] = out.glob("rolesanywhere-fleet-*.tar.gz")
    return path


def test_the_tarball_holds_no_repository_only_files(tarball):
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    assert not [n for n in names if n.startswith(REPOSITORY_ONLY) or "/molecule/" in n or n.endswith("/molecule")]
    assert {"README.md", "CHANGELOG.rst", "changelogs/changelog.yaml", "meta/runtime.yml", "requirements.txt",
            "docs/iam-policy.json"} <= set(names)
    info = manifest["collection_info"]
    assert info["authors"] == ["rolesanywhere.fleet maintainers (@rolesanywhere-fleet)"]
    assert "example.invalid" not in json.dumps(info)
    assert info["version"] == yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]


def test_modules_roles_and_playbooks_work_from_the_installed_tarball(tarball, tmp_path):
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "-p", str(tmp_path), str(tarball)],
                   check=True, capture_output=True, text=True, timeout=300)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path), ANSIBLE_NOCOLOR="1")
    env.pop("PYTHONPATH", None)
    installed = tmp_path / "ansible_collections" / "rolesanywhere" / "fleet"
    modules = sorted(f"rolesanywhere.fleet.{p.stem}" for p in (installed / "plugins" / "modules").glob("*.py"))
    docs = subprocess.run([str(BIN / "ansible-doc"), "-j", *modules], env=env, capture_output=True, text=True,
                          timeout=300, check=True)
    assert sorted(json.loads(docs.stdout)) == modules
    roles = subprocess.run([str(BIN / "ansible-doc"), "-t", "role", "-l", "rolesanywhere.fleet"], env=env,
                           capture_output=True, text=True, timeout=300, check=True)
    for role in ("aws_setup", "ca", "enrol", "rotate", "signing_helper", "token"):
        assert f"rolesanywhere.fleet.{role}" in roles.stdout
    for playbook in ("aws_setup", "enrol", "report", "revoke", "rotate"):
        syntax = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,",
                                 f"rolesanywhere.fleet.{playbook}"], env=env, capture_output=True, text=True,
                                timeout=300, check=False)
        assert syntax.returncode == 0, syntax.stderr
