"""The quickstart's `make demo` (tests/demo.py) runs start to finish and shows the seed's outcomes."""
import os
import re
import subprocess
import sys

import pytest

from tests.fleet import netns_fleet
from tests.support.ansible import REPO

pytestmark = [pytest.mark.fleet, pytest.mark.slow]


def test_demo_enrols_proves_reports_and_tears_down():
    if os.geteuid() != 0:
        pytest.skip("the demo needs root")
    proc = subprocess.run([sys.executable, "-m", "tests.demo"], cwd=REPO, capture_output=True, text=True, timeout=1200)
    out = proc.stdout
    assert proc.returncode == 0 and out.rstrip().endswith("demo finished"), out[-5000:] + proc.stderr[-3000:]
    arns = re.findall(r"^\s+(fl\d+)\s+sts get-caller-identity\s+allowed .* (arn:aws:sts::\S+)$", out, re.M)
    assert len(arns) == 3 and all("assumed-role/site-rolesanywhere/" in arn for _, arn in arns)
    outcomes = re.findall(r"^\s+fl\d+\s+.*\s(allowed|denied)\s+\(expected (allowed|denied)\)", out, re.M)
    assert len(outcomes) == 12 and all(got == expected for got, expected in outcomes)
    assert out.count(" ok ") >= 3  # the report table: every host ok
    hosts = [name for name, _ in arns]
    state = netns_fleet.status()
    assert state is None or not set(hosts) & {h["name"] for h in state["hosts"]}
