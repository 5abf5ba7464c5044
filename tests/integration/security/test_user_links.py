"""Class 1 on localhost: a throwaway unprivileged user plants links between root's runs (see user_links.py)."""
import os
import secrets
import subprocess

import pytest

from tests.integration.security.user_links import Target, run_scenarios
from tests.support.ansible import run_module


class Localhost(Target):
    def sh(self, command, user=None):
        argv = ["runuser", "-u", user, "--", "sh", "-c", command] if user else ["sh", "-c", command]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, f"{command!r} failed: {proc.stderr}"
        return proc.stdout

    def module(self, name, args):
        return run_module(name, args)


@pytest.mark.skipif(os.geteuid() != 0, reason="creates a local user and runs modules as root")
def test_root_never_follows_links_a_user_planted_on_localhost():
    problems = run_scenarios(Localhost(), "rasec" + secrets.token_hex(3))
    assert not problems, "\n".join(f"{name}: {problem}" for name, problem in problems)
