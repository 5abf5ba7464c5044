"""Real PKCS#11 tokens for tests: a private SoftHSM2 token per test, and swtpm + tpm2-abrmd + tpm2-pkcs11.

Use from a test directory's conftest.py::

    from tests.support.tokens import softhsm_token, swtpm, tpm_token  # noqa: F401

``softhsm_token`` / ``tpm_token`` return a :class:`Token` with ``module_path``, ``token_label``, ``pin``,
``so_pin``, ``env`` (pass it to modules and subprocesses: it selects this token's configuration),
``spec()`` (a TokenSpec for in-process use) and ``module_args()`` (the token options for a module).
TPM tests must be marked ``@pytest.mark.tpm``.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.ansible import COLLECTIONS, ensure_collection_link

SOFTHSM2_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TPM2_MODULE = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so"


@dataclass
class Token:
    module_path: str
    token_label: str
    pin: str
    so_pin: str
    env: dict = field(default_factory=dict)
    kind: str = "softhsm2"

    def spec(self, **overrides):
        from ansible_collections.rolesanywhere.fleet.plugins.module_utils._pkcs11 import TokenSpec

        values = dict(module_path=self.module_path, token_label=self.token_label, pin=self.pin, env=dict(self.env))
        values.update(overrides)
        return TokenSpec(**values)

    def module_args(self, **extra):
        """Token options for a rolesanywhere.fleet module (the token's env goes in ``token_env``)."""
        args = dict(module_path=self.module_path, token_label=self.token_label, pin=self.pin, token_env=dict(self.env))
        args.update(extra)
        return args

    def process_env(self):
        """os.environ plus this token's settings, for pkcs11-tool, p11tool and friends."""
        env = dict(os.environ)
        env.update(self.env)
        return env


def _ensure_importable():
    collections = str(ensure_collection_link())
    if collections not in sys.path:
        sys.path.insert(0, collections)


# Importing this module makes ansible_collections.rolesanywhere.fleet importable, as on hosts.
_ensure_importable()


def make_softhsm_token(directory, label="ra-test", pin="1234", so_pin="12345678"):
    """Create a SoftHSM2 config + tokendir under ``directory`` and initialise one token in it."""
    directory = Path(directory)
    tokendir = directory / "tokens"
    tokendir.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokendir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
    )
    env = {"SOFTHSM2_CONF": str(conf)}
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin],
        check=True, capture_output=True, env={**os.environ, **env}, timeout=30,
    )
    _ensure_importable()
    return Token(SOFTHSM2_MODULE, label, pin, so_pin, env, "softhsm2")


@pytest.fixture
def softhsm_token(tmp_path):
    """A fresh SoftHSM2 token with its own SOFTHSM2_CONF and tokendir under tmp_path."""
    return make_softhsm_token(tmp_path / "softhsm")


# ---------------------------------------------------------------------------------------------------
# swtpm + dbus-daemon + tpm2-abrmd


def free_loopback_port_pair():
    """A free loopback port P with P+1 free too (the swtpm TCTI expects its control port at P+1)."""
    for _attempt in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free pair of loopback ports")


def _wait_for(predicate, what, timeout=15.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with rc={proc.returncode}")
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def _port_open(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop(proc):
    """Stop one process we started, by its own PID."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class SoftwareTPM:
    """swtpm on loopback ports, a private D-Bus session bus and tpm2-abrmd as resource manager."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.processes = []  # (name, Popen) in start order; stopped in reverse by PID
        self.server_port = None
        self._log = None
        self.env = {}  # for tpm2-pkcs11 and tpm2-tools in this TPM's processes

    @property
    def pids(self):
        return {name: proc.pid for name, proc in self.processes}

    def start(self):
        state = self.directory / "state"
        state.mkdir(parents=True, exist_ok=True)
        self.server_port = free_loopback_port_pair()
        ctrl_port = self.server_port + 1
        self._log = log = open(self.directory / "processes.log", "ab")
        swtpm = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
             "--server", f"type=tcp,port={self.server_port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={ctrl_port},bindaddr=127.0.0.1",
             "--flags", "not-need-init,startup-clear", "--log", f"file={self.directory / 'swtpm.log'},level=1"],
            stdout=log, stderr=log,
        )
        self.processes.append(("swtpm", swtpm))
        _wait_for(lambda: _port_open(self.server_port), "swtpm", proc=swtpm)

        bus_socket = self.directory / "dbus.sock"
        bus_address = f"unix:path={bus_socket}"
        dbus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address={bus_address}"],
                                stdout=log, stderr=log)
        self.processes.append(("dbus-daemon", dbus))
        _wait_for(bus_socket.exists, "dbus-daemon", proc=dbus)

        self.env = {
            "DBUS_SESSION_BUS_ADDRESS": bus_address,
            "TPM2_PKCS11_TCTI": "tabrmd:bus_type=session",
            "TPM2TOOLS_TCTI": "tabrmd:bus_type=session",
            "TPM2_PKCS11_LOG_LEVEL": "0",
            "TSS2_LOG": "all+none",
        }
        abrmd = subprocess.Popen(
            ["tpm2-abrmd", "--session", "--allow-root", "--flush-all",
             "--tcti", f"swtpm:host=127.0.0.1,port={self.server_port}"],
            stdout=log, stderr=log, env={**os.environ, **self.env},
        )
        self.processes.append(("tpm2-abrmd", abrmd))
        _wait_for(lambda: self.tool(["tpm2_getrandom", "--hex", "4"], check=False).returncode == 0,
                  "tpm2-abrmd", proc=abrmd)
        return self

    def tool(self, argv, check=True):
        return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **self.env}, check=check,
                              timeout=60)

    def clear_lockout(self):
        """Reset the dictionary-attack counter (swtpm has an empty lockout auth)."""
        self.tool(["tpm2_dictionarylockout", "--clear-lockout"])

    def stop(self):
        for _name, proc in reversed(self.processes):
            _stop(proc)
        self.processes.clear()
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture(scope="session")
def swtpm(tmp_path_factory):
    """One software TPM for the test session (per xdist worker); torn down by recorded PIDs."""
    for binary in ("swtpm", "dbus-daemon", "tpm2-abrmd"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed (tests/bootstrap.sh installs it)")
    tpm = SoftwareTPM(tmp_path_factory.mktemp("swtpm"))
    try:
        tpm.start()
        yield tpm
    finally:
        tpm.stop()


def _init_token_in_subprocess(module_path, label, so_pin, pin, env):
    """Initialise a token in a fresh process: SO login must not follow user logins in one process.

    The PINs travel on stdin, never on a command line.
    """
    _ensure_importable()
    code = (
        "import json, sys\n"
        "from ansible_collections.rolesanywhere.fleet.plugins.module_utils._pkcs11 import init_token\n"
        "a = json.load(sys.stdin)\n"
        "print(json.dumps(init_token(a['module_path'], a['label'], a['so_pin'], a['pin'], a['env'])))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(dict(module_path=module_path, label=label, so_pin=so_pin, pin=pin, env=env)),
        capture_output=True, text=True, env={**os.environ, **env, "PYTHONPATH": str(COLLECTIONS)}, timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"token initialisation failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


@pytest.fixture
def tpm_token(swtpm, tmp_path):
    """A fresh tpm2-pkcs11 token (own TPM2_PKCS11_STORE under tmp_path) on the session's swtpm."""
    swtpm.clear_lockout()  # earlier wrong-PIN tests count against the whole TPM
    store = tmp_path / "tpm2-store"
    store.mkdir()
    env = dict(swtpm.env, TPM2_PKCS11_STORE=str(store))
    label = "ra-tpm-" + uuid.uuid4().hex[:8]
    token = Token(TPM2_MODULE, label, "4321", "87654321", env, "tpm2")
    _init_token_in_subprocess(token.module_path, label, token.so_pin, token.pin, env)
    return token
