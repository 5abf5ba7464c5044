# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether an own CA's directory on the controller outlives the job (not so inside an execution environment)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ca_persistence
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
version_added: 0.1.0
short_description: Tells whether the own CA's directory on the controller survives the job
description:
  - Automation controller and AWX run every job with ansible-runner inside an execution environment, a throw-away
    container. A CA directory on the container's own filesystem (its overlay root, a tmpfs, or the job's private data
    directory C(/runner)) vanishes with the job, and with it the CA database, the issued-certificate records and the CRL.
  - Returns an empty string when the controller is not in a container, or when the CA directory is on a volume mounted
    into the container. Otherwise returns the problem and the fix, for a task to fail with.
  - Runs on the controller; use it only when the CA host is the controller (C(localhost)).
options:
  _terms:
    description: The CA certificate path (its directory holds the key, the database and the issued certificates).
    required: true
    type: list
    elements: path
  ca_host_variable:
    description: The variable that names the CA host, for the message (e.g. C(enrol_ca_host)).
    type: str
    default: enrol_ca_host
"""

EXAMPLES = r"""
- name: Refuse a CA inside an execution environment that would forget what it issued
  ansible.builtin.assert:
    that: __problem | length == 0
    fail_msg: "{{ __problem }}"
    quiet: true
  vars:
    __problem: "{{ lookup('rolesanywhere.fleet.ca_persistence', enrol_ca_cert_path) }}"
  run_once: true
  when: enrol_ca_host in ['localhost', '127.0.0.1']
"""

RETURN = r"""
_raw:
  description: The problem and its fix, or an empty string when the CA directory outlives the job.
  type: list
  elements: str
"""

import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

CONTAINER_MARKERS = ("/run/.containerenv", "/.dockerenv")
THROW_AWAY_FILESYSTEMS = frozenset(("overlay", "fuse-overlayfs", "aufs", "tmpfs"))
# ansible-runner mounts the job's private data directory here; automation controller deletes it after the job.
JOB_DIRECTORY = "/runner"
MOUNTINFO = "/proc/self/mountinfo"


def in_container():
    return bool(os.environ.get("container")) or any(os.path.exists(marker) for marker in CONTAINER_MARKERS)


def _unescape(field):
    return field.encode().decode("unicode_escape")  # mountinfo writes space, tab, newline, backslash as \ooo


def read_mounts(mountinfo_text):
    """(mount point, source root, filesystem type) of each mount, from /proc/self/mountinfo."""
    mounts = []
    for line in mountinfo_text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        separator = fields.index("-")
        mounts.append((_unescape(fields[4]), _unescape(fields[3]), fields[separator + 1]))
    return mounts


def _contains(mount_point, path):
    return mount_point == "/" or path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def throw_away_mount(path, mounts):
    """The mount point holding ``path`` when it vanishes with the container, else None."""
    holding = max((m for m in mounts if _contains(m[0], path)), key=lambda m: len(m[0]), default=None)
    if holding is None:
        return "/"
    mount_point, source_root, fstype = holding
    if fstype in THROW_AWAY_FILESYSTEMS or _contains(JOB_DIRECTORY, mount_point):
        return mount_point
    if mount_point == "/" and source_root != "/":  # a container root kept as a directory (vfs storage)
        return mount_point
    return None


def problem(ca_cert_path, ca_host_variable, container, mountinfo_text):
    if not container:
        return ""
    directory = os.path.dirname(os.path.realpath(ca_cert_path))
    mount_point = throw_away_mount(directory, read_mounts(mountinfo_text))
    if mount_point is None:
        return ""
    return (
        f"The own CA is on {ca_host_variable}=localhost, and localhost is a container here (an execution environment, "
        f"as automation controller and AWX run jobs): the CA directory {directory} is on the container's throw-away "
        f"filesystem (mount {mount_point}), so the CA database, the issued-certificate records and the CRL written "
        "there would be lost when the job ends, and the next job would issue from a CA that has forgotten every serial "
        f"it signed. Fix: set {ca_host_variable} to a CA host of the inventory (the CA directory lives there), or mount "
        f"a persistent CA directory into the execution environment at {directory} (ansible-runner: "
        "--container-volume-mount; automation controller: the container group's pod spec or 'Paths to expose to "
        "isolated jobs'). See docs/execution-environment.md."
    )


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        container = in_container()
        mountinfo_text = ""
        if container:
            try:
                with open(MOUNTINFO) as fh:
                    mountinfo_text = fh.read()
            except OSError as exc:
                raise AnsibleLookupError(f"cannot read {MOUNTINFO} to find where the CA directory lives: {exc}") from exc
        return [problem(term, self.get_option("ca_host_variable"), container, mountinfo_text) for term in terms]
