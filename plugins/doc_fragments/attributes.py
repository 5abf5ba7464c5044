# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The attributes (check mode, diff mode, action group) modules share."""


class ModuleDocFragment:
    # Check mode and diff mode both fully supported.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description: Can run in check mode and return the predicted change without modifying the target.
  diff_mode:
    support: full
    description: Returns what changed (or would change in check mode) as C(before) and C(after) in diff mode.
"""

    # Check mode fully supported; nothing to diff.
    NO_DIFF = r"""
attributes:
  check_mode:
    support: full
    description: Can run in check mode and return the predicted change without modifying the target.
  diff_mode:
    support: none
    description: Returns no diff.
"""

    # Members of the action group in meta/runtime.yml.
    AWS_GROUP = r"""
attributes:
  action_group:
    description: Use C(group/rolesanywhere.fleet.aws) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - rolesanywhere.fleet.aws
"""
