"""The own CA on a CA host of the fleet, as a sliced or containerised rollout needs it (docs/execution-environment.md).

``install_ca(address, directory)`` copies a CA (certificate, encrypted key, database; e.g. a LocalSite's) to
``CA_DIRECTORY`` on a fleet host and gives it a virtualenv with cryptography from the wheelhouse;
``enrol_ca_vars`` are the enrol variables that issue there. ``read_ca(address)`` reads the CA's records back, and
``check_ca`` asserts what a rollout must leave behind: a parseable database with unique serials, every issued certificate recorded, signed by
the CA and valid, and a CRL that verifies.
"""
import dataclasses
import json
import subprocess
from pathlib import Path

from cryptography import x509

from tests.fleet import netns_fleet

REPO = Path(__file__).resolve().parents[2]
CA_DIRECTORY = "/srv/rolesanywhere-ca"
CA_PYTHON = "/opt/rolesanywhere-ca/venv/bin/python"
CA_PYTHON_PACKAGES = ("cryptography",)


def ssh(address, command, input=None, check=True, timeout=300):
    proc = subprocess.run(["ssh", *netns_fleet.ssh_options(), f"root@{address}", command], input=input,
                          capture_output=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"on {address}: {command!r} rc={proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return proc


def _tar(directory, names=None):
    return subprocess.run(["tar", "-C", str(directory), "-ch", *(names or ["."])], capture_output=True,
                          check=True).stdout


def install_ca(address, ca_directory):
    """A CA directory (certificate, encrypted key, database) copied to a fleet host, with a Python to issue there."""
    wheelhouse = REPO / ".work" / "wheelhouse"
    ssh(address, "mkdir -p /opt/rolesanywhere-ca/wheels && tar -C /opt/rolesanywhere-ca/wheels -x",
        input=_tar(wheelhouse))
    ssh(address, "python3 -m venv /opt/rolesanywhere-ca/venv && /opt/rolesanywhere-ca/venv/bin/pip install -q "
                 "--no-index --find-links /opt/rolesanywhere-ca/wheels " + " ".join(CA_PYTHON_PACKAGES))
    ssh(address, f"install -d -m 0700 {CA_DIRECTORY} && tar -C {CA_DIRECTORY} -x", input=_tar(ca_directory))


def enrol_ca_vars(site, ca_host):
    """Overrides of LocalSite.enrol_vars(): issue on ``ca_host`` (an inventory name)."""
    passphrase = site.enrol_vars()["enrol_ca_key"]["passphrase"]
    return {"enrol_ca_host": ca_host, "enrol_ca_cert_path": f"{CA_DIRECTORY}/ca.pem",
            "enrol_ca_key": {"path": f"{CA_DIRECTORY}/ca.key", "passphrase": passphrase}}


def write_inventory(fleet_hosts, ca_host, path, enrol_vars, host_vars=None):
    """Group ``fleet`` (the hosts to enrol) and group ``ca`` (the CA host, its own Python), JSON = YAML. Plays must
    be limited to ``fleet`` (``--limit`` or ``enrol_hosts=fleet`` as an extra variable): play patterns do not see
    inventory variables."""
    inventory = json.loads(netns_fleet.write_inventory(fleet_hosts, path, extra_vars=enrol_vars).read_text())
    inventory["all"]["vars"].update(host_vars or {})
    ca_vars = {"ansible_host": ca_host.address, "ansible_python_interpreter": CA_PYTHON}
    inventory["all"]["children"]["ca"] = {"hosts": {ca_host.name: ca_vars}}
    Path(path).write_text(json.dumps(inventory, indent=2) + "\n")
    return Path(path)


@dataclasses.dataclass
class CARecords:
    ca_cert: x509.Certificate
    database: dict
    issued: dict  # file stem -> certificate from issued/<stem>.pem (the host name for enrol's certificates)
    crl: x509.CertificateRevocationList | None


def read_ca(address):
    """Everything the CA host keeps, read in one SSH call (a JSON of file name -> PEM text)."""
    script = (f"import json, pathlib; d = pathlib.Path('{CA_DIRECTORY}'); "
              "print(json.dumps({str(p.relative_to(d)): p.read_text() for p in d.rglob('*') "
              "if p.is_file() and p.suffix in ('.pem', '.json', '.crl')}))")
    files = json.loads(ssh(address, f"python3 -c \"{script}\"").stdout)
    crl = files.get("ca.crl")
    return CARecords(
        ca_cert=x509.load_pem_x509_certificate(files["ca.pem"].encode()),
        database=json.loads(files["ca.db.json"]),
        issued={Path(name).stem: x509.load_pem_x509_certificate(text.encode())
                for name, text in files.items() if name.startswith("issued/") and not name.endswith("-chain.pem")},
        crl=x509.load_pem_x509_crl(crl.encode()) if crl else None,
    )


def serial_hex(cert):
    return format(cert.serial_number, "x")


def check_ca(records, hosts):
    """The CA's state after a rollout that included ``hosts``: returns the database entries by serial."""
    entries = records.database["certificates"]
    serials = [e["serial"] for e in entries]
    assert len(serials) == len(set(serials)), f"duplicate serials in the CA database: {serials}"
    by_serial = {e["serial"]: e for e in entries}
    assert set(hosts) <= set(records.issued), f"issued/ holds {sorted(records.issued)}, not all of {hosts}"
    ca_public = records.ca_cert.public_key()
    for name, cert in records.issued.items():  # <host>.pem, and <host>-<generation>.pem after a rotation
        entry = by_serial.get(serial_hex(cert))
        assert entry is not None, f"{name}: issued serial {serial_hex(cert)} is not in the CA database"
        assert entry["subject"] == cert.subject.rfc4514_string()
        cert.verify_directly_issued_by(records.ca_cert)
        assert cert.public_key() != ca_public
    for host in hosts:
        assert f"CN={host}," in records.issued[host].subject.rfc4514_string() + ","
    issued_serials = [serial_hex(c) for c in records.issued.values()]
    assert len(issued_serials) == len(set(issued_serials))
    if records.crl is not None:
        assert records.crl.is_signature_valid(ca_public), "the CRL does not verify with the CA key"
        revoked = {format(r.serial_number, "x") for r in records.crl}
        assert revoked == {e["serial"] for e in entries if e["status"] == "revoked"}
        number = records.crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        assert number == records.database["crl_number"]
    return by_serial
