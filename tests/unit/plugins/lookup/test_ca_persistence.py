"""The lookup rolesanywhere.fleet.ca_persistence: where a CA directory on the controller lives, from mountinfo lines
as podman and a plain machine write them. The refusal inside a real execution environment is tested in
tests/integration/ee/."""
import json
import re
import subprocess
import sys
from pathlib import Path

from ansible_collections.rolesanywhere.fleet.plugins.lookup import ca_persistence
from tests.support.ansible import ansible_env, run_playbook

# /proc/self/mountinfo inside `podman run -v /srv/host-ca:/srv/ca -v /tmp/job:/runner` (overlay storage).
PODMAN = """\
94 68 0:42 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/containers/storage/overlay/l/X
95 94 254:0 /tmp/job /runner rw,relatime - ext4 /dev/vda rw
96 94 0:45 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
97 94 0:46 / /dev rw,nosuid,noexec - tmpfs tmpfs rw,size=65536k,mode=755
99 94 254:0 /srv/host-ca /srv/ca rw,relatime - ext4 /dev/vda rw
100 94 254:0 /srv/host\\040ca /srv/my\\040ca rw,relatime - ext4 /dev/vda rw
103 94 0:41 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw
"""
# A container root kept as a plain directory (vfs storage driver).
VFS = "70 60 254:0 /var/lib/containers/storage/vfs/dir/abc / rw - ext4 /dev/vda rw\n"
# A machine (or VM) whose root is a real disk.
MACHINE = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n28 27 0:30 / /run rw - tmpfs tmpfs rw\n"


def problem(path, mounts, container=True):
    return ca_persistence.problem(path, "enrol_ca_host", container, mounts)


def test_outside_a_container_every_place_is_accepted():
    assert problem("/run/ca/ca.pem", MACHINE, container=False) == ""


def test_in_a_container_the_overlay_root_tmpfs_and_the_job_directory_are_refused():
    for path, mount in (("/srv/rolesanywhere-ca/ca.pem", "/"), ("/tmp/ca/ca.pem", "/tmp"),
                        ("/runner/project/ca/ca.pem", "/runner"), ("/runner/ca.pem", "/runner")):
        message = problem(path, PODMAN)
        assert f"(mount {mount})" in message, message
        assert "would be lost when the job ends" in message
        assert "Fix: set enrol_ca_host to a CA host of the inventory" in message
        assert "mount a persistent CA directory" in message


def test_in_a_container_a_mounted_ca_directory_is_accepted():
    assert problem("/srv/ca/ca.pem", PODMAN) == ""
    assert problem("/srv/ca/sub/ca.pem", PODMAN) == ""
    assert problem("/srv/my ca/ca.pem", PODMAN) == ""  # mountinfo escapes spaces
    assert problem("/srv/cax/ca.pem", PODMAN) != ""    # a prefix of the mount point by characters only


def test_a_vfs_container_root_is_refused_and_a_real_root_disk_is_not():
    assert "(mount /)" in problem("/srv/ca/ca.pem", VFS)
    assert problem("/srv/ca/ca.pem", MACHINE) == ""  # e.g. a VM that carries a stray /.dockerenv


def test_the_enrol_role_refuses_first_inside_a_container(tmp_path):
    """The role's first task fails with the lookup's message before anything else runs. The environment variable
    `container` is the marker podman and systemd-nspawn set; /dev/shm is a tmpfs on every Linux machine."""
    playbook = tmp_path / "enrol_local.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "connection": "local",
                                     "roles": [{"role": "rolesanywhere.fleet.enrol"}]}]))
    proc = run_playbook(playbook, check=False, env={"container": "podman"}, extra_vars={
        "enrol_ca_cert_path": f"/dev/shm/{tmp_path.name}/ca.pem", "enrol_ca_key": {"path": "/dev/shm/none.key"},
        "enrol_trust_anchor_arn": "ta", "enrol_profile_arn": "p", "enrol_role_arn": "r"})
    assert proc.returncode == 2, proc.stdout[-3000:]
    tasks = re.findall(r"^TASK \[rolesanywhere\.fleet\.enrol : (.*?)\] \*", proc.stdout, re.M)
    assert [t.split(" ")[0] for t in tasks] == ["Validating", "Refuse"], tasks  # argument spec, then the refusal
    assert "(mount /dev/shm)" in proc.stdout and "would be lost when the job ends" in proc.stdout
    assert "changed=0" in proc.stdout and "failed=1" in proc.stdout


def test_lookup_renders_with_ansible_doc():
    env = ansible_env()
    env.pop("PYTHONPATH")  # the collection comes from ANSIBLE_COLLECTIONS_PATH; ansible from this Python's venv
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "-t", "lookup", "-j",
                           "rolesanywhere.fleet.ca_persistence"], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rolesanywhere.fleet.ca_persistence"]["doc"]["options"]["ca_host_variable"]
