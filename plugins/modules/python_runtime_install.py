#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: python_runtime_install
short_description: Unpack the prebuilt Python runtime on a host and install the bundled helper's command
version_added: 0.2.0
description:
  - Unpacks an archive built by M(rolesanywhere.fleet.python_runtime) into O(dest)C(/<key>/python<X.Y>) and points
    O(dest)C(/current) at it, in one module run (the action plugin sends the archive). The archive is unpacked into
    a temporary directory and renamed into place, so a run killed midway leaves no half runtime.
  - When the runtime is already there (O(present)), the archive is not sent at all.
  - With O(helper), also writes the bundled helper's console entry point, links it from a directory on C(PATH) and
    checks that it runs (C(version)): the runtime and the helper in one module run.
  - Run it with the host interpreter the runtime was built for (C(ansible_python_interpreter)): bytecode is
    compiled with it when the archive has none.
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
options:
  src:
    description: The archive on the controller (RV(rolesanywhere.fleet.python_runtime#module:targets[].path)).
    type: path
    required: true
  dest:
    description: The runtime directory on the host, for example C(/opt/rolesanywhere-fleet/runtime).
    type: path
    required: true
  key:
    description: The archive's key (RV(rolesanywhere.fleet.python_runtime#module:targets[].key)).
    type: str
    required: true
  python_version:
    description: The host's Python minor version, for example V(3.11).
    type: str
    required: true
  compiled:
    description: Whether the archive holds bytecode; when false the host compiles after unpacking.
    type: bool
    default: true
  present:
    description: The caller knows the runtime is on the host already (from a probe): the archive is not sent.
    type: bool
    default: false
  helper:
    description: The bundled helper's command, installed after the runtime.
    type: dict
    suboptions:
      path:
        description: Where the entry point is written (mode 0755, owned by root).
        type: path
        required: true
      content:
        description: The entry point's text.
        type: str
        required: true
      link:
        description: A link to O(helper.path), for example in C(/usr/local/bin).
        type: path
      check_version:
        description: Run the command with C(version) and fail when it does not run.
        type: bool
        default: true
extends_documentation_fragment:
  - rolesanywhere.fleet.attributes.no_diff
attributes:
  action:
    support: full
    description: The action plugin sends O(src) to the host.
"""

EXAMPLES = r"""
- name: Unpack the runtime and install the helper
  rolesanywhere.fleet.python_runtime_install:
    src: "{{ runtime.targets[0].path }}"
    dest: /opt/rolesanywhere-fleet/runtime
    key: "{{ runtime.targets[0].key }}"
    python_version: "3.11"
    helper:
      path: /opt/rolesanywhere-fleet/bin/rolesanywhere-credential-helper
      content: "{{ lookup('ansible.builtin.file', 'rolesanywhere-credential-helper') }}"
      link: /usr/local/bin/rolesanywhere-credential-helper
  vars:
    ansible_python_interpreter: /usr/bin/python3
"""

RETURN = r"""
runtime_dir:
  description: The unpacked runtime, the directory to put on the import path.
  returned: success
  type: str
  sample: /opt/rolesanywhere-fleet/runtime/41e13f7aa6da6e58/python3.11
helper_version:
  description: What C(<helper> version) printed (empty in check mode or without O(helper)).
  returned: success
  type: str
  sample: 1.5.0-rolesanywhere.fleet
"""

import subprocess

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _runtime


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path"),  # the action plugin replaces it with the copy on the host, or None
            dest=dict(type="path", required=True),
            key=dict(type="str", required=True),
            python_version=dict(type="str", required=True),
            compiled=dict(type="bool", default=True),
            present=dict(type="bool", default=False),
            helper=dict(type="dict", options=dict(
                path=dict(type="path", required=True),
                content=dict(type="str", required=True),
                link=dict(type="path"),
                check_version=dict(type="bool", default=True),
            )),
        ),
        supports_check_mode=True,
    )
    params = module.params
    helper = params["helper"]
    try:
        changed, runtime_dir = _runtime.install(params["src"], params["dest"], params["key"], params["python_version"],
                                                params["compiled"], module.check_mode)
        if helper:
            changed = _runtime.install_command(helper["path"], helper["content"], helper["link"],
                                               module.check_mode) or changed
    except (_runtime.RuntimeInstallError, OSError) as exc:
        module.fail_json(msg="cannot install the runtime in %s: %s" % (params["dest"], exc))
    version = ""
    if helper and helper["check_version"] and not module.check_mode:
        proc = subprocess.run([helper["path"], "version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, check=False)
        if proc.returncode != 0:
            module.fail_json(msg="%s version failed (rc %d): %s" % (
                helper["path"], proc.returncode, (proc.stderr or proc.stdout).strip()[-300:]), changed=changed)
        version = proc.stdout.strip()
    module.exit_json(changed=changed, runtime_dir=runtime_dir, helper_version=version)


if __name__ == "__main__":
    main()
