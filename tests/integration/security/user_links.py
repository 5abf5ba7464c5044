"""Class 1 of the security issue: root writing into places a local user controls.

A real unprivileged user (created for the test, removed after it) plants symbolic links (as that user) and hard
links between runs; the collection's modules then run as root for that user. Each scenario states what must
happen (a named refusal, or success that leaves the planted target alone) and checks that nothing outside the
user's own tree changed: the root-only secret keeps its content, owner and mode, the root-owned victim directory
gets no file and keeps its mode, and no file the user can read holds the secret.

Hard links to root's files cannot be made by an ordinary user where fs.protected_hardlinks=1 (Debian's default);
the test plants them as root, as a user could on a host with protected_hardlinks=0.

The same scenarios run on localhost (tests/integration/security/test_user_links.py) and on a fleet host over SSH
(test_user_links_fleet.py); a ``Target`` runs shell commands and modules on one of them.
"""
import json
import secrets
import shlex
from dataclasses import dataclass, field

ANCHOR = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/aaaa"
PROFILE = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/bbbb"
ROLE = "arn:aws:iam::111122223333:role/app"


def places(user):
    """Per-run paths (the user's name is random), so two checkouts testing at once never collide:
    a root 0700 directory the user cannot look into, its root 0600 secret, a root 0755 directory the user
    cannot write into."""
    secret_dir = f"/var/lib/{user}-secret"
    return secret_dir, secret_dir + "/secret", f"/var/lib/{user}-victim"


@dataclass
class Scenario:
    name: str
    plant: str                    # shell run as the user (U, H: the user's name and home) between runs
    module: str
    args: dict
    message: str = ""             # the refusal's text; empty: the module must succeed
    plant_as_root: str = ""       # shell run as root (hard links)
    checks: list = field(default_factory=list)   # extra shell checks (run as root) that must print OK


def credential_args(user, home, **extra):
    args = dict(user=user, profile="ra", impl="python", certificate="/etc/rolesanywhere/host.pem",
                token_label="host", key_label="ra-2026", module_path="/usr/lib/softhsm/libsofthsm2.so",
                pin_file=f"{home}/pin", trust_anchor_arn=ANCHOR, profile_arn=PROFILE, role_arn=ROLE,
                region="us-east-1")
    args.update(extra)
    return args


def rotation_args(user, home):
    """The rotation's decision on a host whose pki dir the user owns (~/pki): it reads the current certificate."""
    return dict(action="begin", run_id="run-" + user, host="host1", path=places(user)[0] + "/rotation.fact",
                pki_dir=f"{home}/pki", lock_ttl=30, lock_wait=2, metrics_dir="")


def planted_links(what, place, module, args, user, home, parent=""):
    """Two scenarios: the file at $H/``place`` replaced by a symbolic link (as the user) and by a hard link (as root)
    to the root-only secret; both must be refused by name, the link left as it is."""
    secret_file = places(user)[1]
    prepare = f"mkdir -p $H/{parent} && " if parent else ""
    return [
        Scenario(f"{what} is a symlink to a root-only file", f"{prepare}rm -f $H/{place} && ln -s {secret_file} $H/{place}",
                 module, args, "is a symbolic link",
                 checks=[f"test \"$(readlink {home}/{place})\" = {secret_file} && echo OK"]),
        Scenario(f"{what} is a hard link to a root-only file", f"{prepare}rm -f $H/{place}", module, args, "hard links",
                 plant_as_root=f"ln {secret_file} {home}/{place}"),
    ]


def scenarios(user, home):
    secret_file, victim = places(user)[1:]
    aws_pin = credential_args(user, home, impl="aws", pin_file=f"{home}/pin")
    return [
        *planted_links("config", ".aws/config", "aws_credential_process", credential_args(user, home), user, home,
                       parent=".aws"),
        Scenario("~/.aws is a symlink to a root-owned directory",
                 "rm -rf $H/.aws && ln -s " + victim + " $H/.aws",
                 "aws_credential_process", credential_args(user, home), "symbolic link owned by uid"),
        *planted_links("PIN file (impl aws)", "pin", "aws_credential_process", aws_pin, user, home),
        Scenario("PIN file directory is a symlink to a root-owned directory",
                 "rm -rf $H/.config && ln -s " + victim + " $H/.config",
                 "owned_path", dict(path=f"{home}/.config/ra/pin", content="97315", owner=user, mode="0600"),
                 "symbolic link owned by uid"),
        Scenario("token store holds a symlink to a root-only file (tree ownership)",
                 "mkdir -p $H/store && ln -sfn " + secret_file + " $H/store/planted",
                 "owned_path", dict(path=f"{home}/store", state="tree", owner=user, mode="0700"), ""),
        Scenario("token store holds a hard link to a root-only file (tree ownership)",
                 "mkdir -p $H/store && rm -f $H/store/planted",
                 "owned_path", dict(path=f"{home}/store", state="tree", owner=user, mode="0700"), "hard links",
                 plant_as_root=f"ln {secret_file} {home}/store/planted"),
        *planted_links("rotation: the current certificate", "pki/rolesanywhere.pem", "rolesanywhere_rotation",
                       rotation_args(user, home), user, home, parent="pki"),
        Scenario("rotation: the pki dir is a symlink to a root-owned directory",
                 "rm -rf $H/pki && ln -s " + victim + " $H/pki",
                 "rolesanywhere_rotation", rotation_args(user, home), "symbolic link owned by uid"),
    ]


class Target:
    """Shell and modules on one host; subclasses say how (local subprocess or ssh + ansible)."""

    def sh(self, command, user=None):  # pragma: no cover - interface
        raise NotImplementedError

    def module(self, name, args):  # pragma: no cover - interface
        raise NotImplementedError


def setup(target, user):
    secret_dir, secret_file, victim = places(user)
    secret = "TOP-secret_file-" + secrets.token_hex(8)
    # /etc/passwd may be locked for a moment by another process adding a user: retry briefly
    target.sh(f"for i in 1 2 3 4 5; do useradd -m -s /bin/sh {user} && exit 0; sleep 1; done; exit 1")
    target.sh(f"install -d -m 0700 {secret_dir} && printf %s {secret} > {secret_file} && chmod 0600 {secret_file} && "
              f"install -d -m 0755 {victim}")
    home = target.sh(f"getent passwd {user} | cut -d: -f6").strip()
    return secret, home


def teardown(target, user):
    secret_dir, victim = places(user)[::2]
    target.sh(f"userdel -r {user} 2>/dev/null; rm -rf {secret_dir} {victim}; true")


def state(target, user):
    """What must not change: the secret (content, owner, mode), the victim (mode, owner, entries)."""
    secret_file, victim = places(user)[1:]
    return target.sh(f"stat -c '%U %a %s' {secret_file} {victim}; sha256sum {secret_file}; ls -A {victim}")


def user_readable_with(target, user, home, secret):
    """Files under the user's home that the user can read and that hold the secret."""
    return target.sh(f"grep -rl {shlex.quote(secret)} {home} 2>/dev/null || true", user=user).strip()


def run_scenarios(target, user):
    """Runs every scenario; returns a list of (scenario name, problem) for the ones that went wrong."""
    secret, home = setup(target, user)
    problems = []
    try:
        baseline = target.module("aws_credential_process", credential_args(user, home))
        assert not baseline.get("failed"), baseline
        owner_mode = target.sh(f"stat -c '%U %a' {home}/.aws {home}/.aws/config").split()
        assert owner_mode == [user, "700", user, "600"], owner_mode
        for scenario in scenarios(user, home):
            before = state(target, user)
            target.sh(scenario.plant.replace("$H", home), user=user)
            if scenario.plant_as_root:
                target.sh(scenario.plant_as_root)
            result = target.module(scenario.module, scenario.args)
            text = json.dumps(result)
            if scenario.message:
                if not result.get("failed") or scenario.message not in result.get("msg", ""):
                    problems.append((scenario.name, f"expected a refusal with {scenario.message!r}: {text[:600]}"))
            elif result.get("failed"):
                problems.append((scenario.name, f"expected success: {text[:600]}"))
            if "Traceback" in text:
                problems.append((scenario.name, "traceback"))
            if state(target, user) != before:
                problems.append((scenario.name, f"changed outside the user's tree:\n{before}\n-> {state(target, user)}"))
            leaked = user_readable_with(target, user, home, secret)
            if leaked:
                problems.append((scenario.name, f"the secret is readable by the user in {leaked}"))
            for check in scenario.checks:
                if target.sh(check + " || true").strip() != "OK":
                    problems.append((scenario.name, f"check failed: {check}"))
            # the next scenario starts from a clean tree (as root: the user cannot remove root's planted links)
            target.sh(f"rm -rf {home}/.aws {home}/pin {home}/.config {home}/store {home}/pki")
    finally:
        teardown(target, user)
    return problems
