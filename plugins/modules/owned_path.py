#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: owned_path
short_description: Write a file or directory for a local user without following that user's links
version_added: 0.2.0
description:
  - Creates a directory, writes a file (for example a token PIN file) or gives a directory tree to a local user,
    as root, in places that user may control.
  - The path is walked from C(/) with directory descriptors. A symbolic link is followed only when root owns it in a
    directory only root can write; every other link, a directory of a third user, a directory anyone may write,
    and a file with more than one hard link is refused with a message that names it. Files are written as new files
    renamed over the name, so nothing is written through a link; owner and mode are set on descriptors.
options:
  path:
    description: Absolute path of the file or directory.
    type: path
    required: true
  state:
    description:
      - V(file) writes O(content); missing parent directories are created with mode 0755 (root's where root owns
        the tree, the owner's inside the owner's tree).
      - V(directory) creates the directory (and missing parents) and gives it O(owner), O(group) and O(mode).
      - V(tree) is V(directory) plus giving every directory and regular file below it to O(owner) (links are left
        alone and never followed).
    type: str
    choices: [file, directory, tree]
    default: file
  content:
    description: The file's content (V(file)). Never logged or shown in diffs.
    type: str
  owner:
    description: The user who owns the file or directory; directories on the way may belong to root or this user.
    type: str
    default: root
  group:
    description: The group; the owner's primary group when omitted.
    type: str
  mode:
    description: Octal mode, for example V('0600').
    type: str
    required: true
attributes:
  check_mode:
    support: full
    description: Reports what would change and changes nothing.
  diff_mode:
    support: none
    description: No diff is shown (the content may be a PIN).
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
"""

EXAMPLES = r"""
- name: PIN file for the signing user
  rolesanywhere.fleet.owned_path:
    path: /home/app/.config/rolesanywhere/pin
    content: "{{ vault_token_pin }}"
    owner: app
    mode: "0600"
  no_log: true

- name: Give the signing user its token store
  rolesanywhere.fleet.owned_path:
    path: /var/lib/softhsm/tokens
    state: tree
    owner: app
    mode: "0700"
"""

RETURN = r"""
path:
  description: The path managed.
  returned: always
  type: str
  sample: /etc/rolesanywhere-fleet/token.pin
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _user_files as files


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["file", "directory", "tree"], default="file"),
            content=dict(type="str", no_log=True),
            owner=dict(type="str", default="root"),
            group=dict(type="str"),
            mode=dict(type="str", required=True),
        ),
        required_if=[("state", "file", ("content",))],
        supports_check_mode=True,
    )
    p = module.params
    try:
        mode = int(p["mode"], 8)
        if not 0 <= mode <= 0o7777:
            raise ValueError
    except ValueError:
        module.fail_json(msg=f"mode {p['mode']!r} is not an octal file mode such as '0600': fix mode")
    try:
        uid, gid = files.account(p["owner"], p["group"])
        if p["state"] == "file":
            changed = files.ensure_file(p["path"], p["content"].encode("utf-8"), uid, gid, mode, module.check_mode)
        else:
            changed = files.ensure_directory(p["path"], uid, gid, mode, p["state"] == "tree", module.check_mode)
    except files.UnsafePath as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"cannot write {p['path']}: {exc.strerror}")
    module.exit_json(changed=changed, path=p["path"])


if __name__ == "__main__":
    main()
