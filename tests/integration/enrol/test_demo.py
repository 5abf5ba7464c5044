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
    assert len(arns) == 4 and all("assumed-role/site-rolesanywhere/" in arn for _, arn in arns)
    outcomes = re.findall(r"^\s+fl\d+\s+.*\s(allowed|denied)\s+\(expected (allowed|denied)\)", out, re.M)
    assert len(outcomes) == 16 and all(got == expected for got, expected in outcomes)
    assert out.count(" ok ") >= 4  # the report table: every host ok
    # one line per host: release, Python, token, the helper auto chose (and why)
    fleet = re.findall(r"^\s+fl\d+\s+(Debian \d+)\s+Python (\S+)\s+token (\S+)\s+helper (\S+) \(auto: (.*)\)$", out, re.M)
    assert sorted((line[0], line[1][:4], line[2]) for line in fleet) == [
        ("Debian 11", "3.9.", "softhsm2"), ("Debian 12", "3.11", "softhsm2"), ("Debian 12", "3.11", "tpm2"),
        ("Debian 13", "3.13", "softhsm2")]
    assert all(line[3] == "python" for line in fleet)
    assert [line[4] for line in fleet if line[0] == "Debian 11"] == [
        "x86_64, glibc 2.31: glibc 2.31 is older than the glibc 2.34 aws_signing_helper 1.5.0 needs"]
    hosts = [name for name, _ in arns]
    state = netns_fleet.status()
    assert state is None or not set(hosts) & {h["name"] for h in state["hosts"]}
