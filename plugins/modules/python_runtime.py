#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: python_runtime
short_description: Build the hosts' prebuilt Python runtime (cryptography, python-pkcs11) on the controller
version_added: 0.2.0
description:
  - Builds, once per target, an archive with the Python packages the token modules and the bundled signing
    helper need, for hosts of one Python minor version and architecture. Run it on the controller
    (with C(delegate_to) set to C(localhost)); hosts then only unpack the archive, with no virtualenv, no pip and no package
    index (offline hosts work).
  - The archive holds C(<key>/python<X.Y>/) and is named after a digest of every input (versions, platform tags,
    packages, the wheelhouse listing or index URL); when it exists the module changes nothing.
  - The packages come from O(wheelhouse) directories (C(pip --no-index --find-links)) or from O(index_url).
    When a wheel for the target is missing the module fails naming the package, Python version and architecture.
  - Bytecode is compiled here when the controller has an interpreter of the target version (the result says so
    in RV(targets[].compiled)); otherwise the hosts compile after unpacking.
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
requirements:
  - pip on the controller's Python
options:
  targets:
    description:
      - The hosts' platforms, each a dict with C(python_version) (C(3.11)), C(machine) (C(x86_64)) and C(glibc)
        (C(2.36)). Duplicates are built once.
    type: list
    elements: dict
    required: true
  cache_dir:
    description: Controller directory keeping the archives.
    type: path
    required: true
  wheelhouse:
    description: Directories of wheels (one flat directory may hold wheels for every Python version).
    type: list
    elements: path
    default: []
  index_url:
    description: A package index to use instead of O(wheelhouse).
    type: str
  packages:
    description: Requirements to install.
    type: list
    elements: str
    default: [cryptography, python-pkcs11, asn1crypto]
  modules:
    description:
      - Controller files of the collection's module_utils to ship in the archive under their package path
        (C(ansible_collections/rolesanywhere/fleet/plugins/module_utils/)), for the bundled helper.
    type: list
    elements: path
    default: []
attributes:
  check_mode:
    support: full
    description: Reports the archives that would be built, and builds nothing.
  diff_mode:
    support: none
    description: Nothing to compare; the archive is new or unchanged.
"""

EXAMPLES = r"""
- name: Build the runtime for every Python version in the play
  rolesanywhere.fleet.python_runtime:
    targets:
      - {python_version: "3.11", machine: x86_64, glibc: "2.36"}
    cache_dir: "{{ lookup('env', 'HOME') }}/.cache/rolesanywhere-fleet/runtime"
    wheelhouse: [/srv/wheelhouse]
  delegate_to: localhost
  run_once: true
  register: runtime
"""

RETURN = r"""
targets:
  description: One entry per distinct target, in the order given.
  returned: success
  type: list
  elements: dict
  contains:
    python_version:
      description: The target's Python minor version.
      type: str
    machine:
      description: The target's architecture.
      type: str
    path:
      description: The archive on the controller.
      type: str
    key:
      description: Digest of the inputs; the archive's top directory.
      type: str
    built:
      description: Whether this run built it (false when it was in O(cache_dir)).
      type: bool
    compiled:
      description: Whether the archive holds bytecode for the target's Python.
      type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _runtime


def _target(item):
    return (str(item.get("python_version", "")), str(item.get("machine", "")), str(item.get("glibc", "")))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            targets=dict(type="list", elements="dict", required=True),
            cache_dir=dict(type="path", required=True),
            wheelhouse=dict(type="list", elements="path", default=[]),
            index_url=dict(type="str"),
            packages=dict(type="list", elements="str", default=list(_runtime.DEFAULT_PACKAGES)),
            modules=dict(type="list", elements="path", default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    results, seen = [], set()
    try:
        for target in map(_target, params["targets"]):
            if target in seen:
                continue
            seen.add(target)
            if module.check_mode:
                key = _runtime.runtime_key(*target, params["packages"], params["wheelhouse"], params["index_url"],
                                           params["modules"])
                results.append(dict(python_version=target[0], machine=target[1], key=key, path="",
                                    built=False, compiled=False))
                continue
            results.append(_runtime.build(*target, cache_dir=params["cache_dir"], packages=params["packages"],
                                          wheelhouses=params["wheelhouse"], index_url=params["index_url"],
                                          modules=params["modules"]))
    except _runtime.RuntimeBuildError as exc:
        module.fail_json(msg=str(exc), targets=results)
    module.exit_json(changed=any(item["built"] for item in results), targets=results,
                     cache_dir=os.path.abspath(params["cache_dir"]))


if __name__ == "__main__":
    main()
