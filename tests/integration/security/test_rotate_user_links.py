"""Class 1 in the rotate role: a fleet host enrolled for a real unprivileged signing user (who owns the token and
the pki dir), links planted by that user in the pki dir between runs, then forced rotations (rotate.yml).

Planted before the first rotation, for every name the next generation can get in the coming minutes (names are
``<label>-<UTC time>``): symbolic links to a root-only secret and into a root-owned directory, and (as root, as on
a host with fs.protected_hardlinks=0) hard links to the secret; the retired generation's CSR is swapped for a hard
link to the secret. The rotation must succeed without following any of them, reading the secret or changing
anything outside the user's tree; the token's objects and the new files belong to the user. Then the current
certificate is swapped for a link to the secret: the next rotation refuses by name and changes nothing.
"""
import json
import secrets

import pytest

from tests.fleet import netns_fleet
from tests.integration.security.test_user_links_fleet import FleetHost
from tests.integration.security.user_links import places, setup, state, teardown, user_readable_with
from tests.site import LocalSite
from tests.support.ansible import REPO, recap, run_playbook

pytestmark = [pytest.mark.fleet, pytest.mark.slow]
ENROL = REPO / "playbooks" / "enrol.yml"
ROTATE = REPO / "playbooks" / "rotate.yml"
STATE = "/etc/ansible/facts.d/rolesanywhere.fact"
TOKEN_DIR = "/var/lib/softhsm/tokens"
WINDOW = 300  # seconds of future generation names planted


@pytest.fixture
def user_host(fleet, tmp_path):  # noqa: F811
    hosts = fleet(1)
    target = FleetHost(hosts, hosts.names[0])
    suffix = secrets.token_hex(3)
    user, pki = "rarot" + suffix, f"/etc/rapki-{suffix}"
    secret, home = setup(target, user)
    try:
        with LocalSite(tmp_path / "site") as site:
            inventory = netns_fleet.write_inventory(hosts.hosts, tmp_path / "inventory.yml", extra_vars=site.enrol_vars(
                enrol_token_user=user, enrol_pki_dir=pki, enrol_verify=False))
            run_playbook(ENROL, inventory=str(inventory))
            yield target, user, home, pki, secret, inventory
    finally:
        teardown(target, user)
        target.sh(f"rm -rf {pki}")


def rotate(inventory, name):
    return run_playbook(ROTATE, inventory=str(inventory), check=False, extra_vars={
        "rotate_hosts": name, "rotate_force": True, "rotate_lock_ttl": 30, "rotate_lock_wait": 60})


def plant(target, user, pki):
    """Links at the next WINDOW seconds' generation names: even seconds symbolic (as the user), odd seconds hard
    (as root). Returns the symbolic links planted {path: target}."""
    secret_file, victim = places(user)[1:]
    names = target.sh(f"now=$(date -u +%s); for i in $(seq 0 {WINDOW}); do "
                      "date -u -d @$((now+i)) +rolesanywhere-%Y%m%d%H%M%S; done").split()
    symbolic = {}
    for index, name in enumerate(names):
        if index % 2 == 0:
            symbolic[f"{pki}/{name}.csr"] = secret_file
            symbolic[f"{pki}/{name}.pem"] = f"{victim}/planted.pem"
    script = "".join(f"ln -s {where} {path}\n" for path, where in symbolic.items())
    target.sh(f"cat > /tmp/{user}.plant <<'EOF'\n{script}EOF\nchmod 0644 /tmp/{user}.plant")
    target.sh(f"sh /tmp/{user}.plant", user=user)
    target.sh(f"rm /tmp/{user}.plant")
    hard = " ".join(f"{pki}/{name}.csr {pki}/{name}.pem" for index, name in enumerate(names) if index % 2)
    target.sh(f"for p in {hard}; do ln {secret_file} $p; done; "
              f"rm -f {pki}/rolesanywhere.csr && ln {secret_file} {pki}/rolesanywhere.csr")
    return symbolic


def test_forced_rotation_follows_no_link_the_signing_user_planted(user_host):
    target, user, home, pki, secret, inventory = user_host
    name = target.name
    before = state(target, user)
    symbolic = plant(target, user, pki)

    first = rotate(inventory, name)
    assert recap(first.stdout)[name]["failed"] == 0, first.stdout[-6000:]
    host_state = json.loads(target.sh(f"cat {STATE}"))
    assert host_state["rotation_state"] == "renewed"
    current = host_state["rotation"]["current"]
    assert current["name"] != "rolesanywhere" and current["certificate"].startswith(pki + "/")

    assert state(target, user) == before, "something outside the user's tree changed"
    assert user_readable_with(target, user, home, secret) == ""
    assert user_readable_with(target, user, pki, secret) == ""
    # the new generation: regular files of the user, a real certificate; the retired one is gone
    listing = target.sh(f"stat -c '%F %U' {current['certificate']} {current['csr']}").splitlines()
    assert listing == [f"regular file {user}"] * 2, listing
    assert "BEGIN CERTIFICATE" in target.sh(f"cat {current['certificate']}")
    target.sh(f"openssl x509 -noout -in {current['certificate']}")
    assert target.sh(f"ls {pki}/rolesanywhere.pem {pki}/rolesanywhere.csr 2>/dev/null; true").strip() == ""
    # every other planted link is still there, pointing where the user pointed it: none was followed or rewritten
    remaining = target.sh(f"find {pki} -type l -printf '%p %l\\n'").splitlines()
    remaining = dict(line.split(" ", 1) for line in remaining)
    assert all(symbolic[path] == where for path, where in remaining.items()), remaining
    assert len(symbolic) - len(remaining) <= 2, "more than the new generation's names were cleared"
    # the token's objects (old key deleted, new one made) belong to the user: one key pair
    assert target.sh(f"find {TOKEN_DIR} ! -user {user}").strip() == ""
    objects = target.sh(f"runuser -u {user} -- pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label "
                        "rolesanywhere --login --pin \"$(cat /etc/rolesanywhere-fleet/token.pin)\" -O")
    assert objects.count("Private Key Object") == 1 and objects.count("Public Key Object") == 1, objects

    # the current certificate swapped for a link to the secret: refused by name, nothing changed
    target.sh(f"ln -sfn {places(user)[1]} {current['certificate']}", user=user)
    kept = target.sh(f"cat {STATE}")
    second = rotate(inventory, name)
    assert second.returncode != 0 and "is a symbolic link" in second.stdout, second.stdout[-4000:]
    assert "Traceback" not in second.stdout
    assert target.sh(f"cat {STATE}") == kept
    assert state(target, user) == before
    assert user_readable_with(target, user, home, secret) == ""
    assert target.sh(f"readlink {current['certificate']}").strip() == places(user)[1]
