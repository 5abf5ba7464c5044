"""Every module renders with ansible-doc: DOCUMENTATION, EXAMPLES and RETURN parse.

Runs under plain pytest (the collection importable from .work/collections) and under `ansible-test units`
(the collection in its ansible_collections/rolesanywhere/fleet tree): ansible-doc is the one of the Python
running the test (or the first on PATH), the collection is found where it was imported from.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

import ansible_collections.rolesanywhere.fleet as collection

COLLECTION_ROOT = Path(list(collection.__path__)[0])
COLLECTIONS_PATH = COLLECTION_ROOT.parents[2]
ANSIBLE_DOC = next(str(p) for p in (Path(sys.executable).parent / "ansible-doc", shutil.which("ansible-doc")) if p and Path(p).exists())
MODULES = sorted(p.stem for p in (COLLECTION_ROOT / "plugins" / "modules").glob("*.py"))


def ansible_doc(names):
    """ansible-doc -j for ``names``: {name: {"doc", "examples", "return", ...}}."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_PATH), ANSIBLE_NOCOLOR="1")
    env.pop("PYTHONPATH", None)  # ansible-test units puts a module_utils-only ansible there
    proc = subprocess.run([ANSIBLE_DOC, "-j", *names],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_every_module_renders_with_documentation_examples_and_return():
    names = [f"rolesanywhere.fleet.{m}" for m in MODULES]
    docs = ansible_doc(names)
    assert sorted(docs) == names
    for name, entry in docs.items():
        assert entry["doc"]["short_description"], name
        # A module is added in a released version or in the next one (galaxy.yml's, or later).
        assert re.fullmatch(r"\d+\.\d+\.\d+", entry["doc"]["version_added"]), name
        assert entry["doc"]["options"] or name.endswith("_info"), name
        assert entry["doc"]["author"] == ["rolesanywhere.fleet maintainers (@rolesanywhere-fleet)"], name
        assert {"check_mode", "diff_mode"} <= set(entry["doc"]["attributes"]), name
        assert yaml.safe_load(entry["examples"]), f"{name}: EXAMPLES do not parse"
        assert entry["return"], f"{name}: no RETURN"


def test_action_group_members_document_their_membership():
    runtime = yaml.safe_load((COLLECTION_ROOT / "meta" / "runtime.yml").read_text())
    for group, members in runtime["action_groups"].items():
        docs = ansible_doc([f"rolesanywhere.fleet.{m}" for m in members])
        assert len(docs) == len(members)
        for name, entry in docs.items():
            assert entry["doc"]["attributes"]["action_group"]["membership"] == [f"rolesanywhere.fleet.{group}"], name
