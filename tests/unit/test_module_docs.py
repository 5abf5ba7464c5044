"""Every module renders with ansible-doc: DOCUMENTATION, EXAMPLES and RETURN parse."""
import json
import subprocess

import yaml

from tests.support.ansible import REPO, ansible_env

MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))


def test_every_module_renders_with_documentation_examples_and_return():
    names = [f"rolesanywhere.fleet.{m}" for m in MODULES]
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-doc"), "-j", *names],
                          capture_output=True, text=True, env=ansible_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert sorted(docs) == names
    for name, entry in docs.items():
        assert entry["doc"]["short_description"] and entry["doc"]["version_added"] == "0.1.0", name
        assert entry["doc"]["options"] or name.endswith("_info"), name
        assert yaml.safe_load(entry["examples"]), f"{name}: EXAMPLES do not parse"
        assert entry["return"], f"{name}: no RETURN"
