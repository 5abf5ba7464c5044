# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sends the runtime archive to the host only when it is not there yet, then runs the module once."""
from __future__ import annotations

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    # A temporary directory (one more remote command) only when the archive travels.
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        module_args = dict(self._task.args)
        sent = None
        try:
            if not self._task.check_mode and not boolean(module_args.get("present", False), strict=False):
                source = self._find_needle("files", module_args.get("src") or "")
                self._make_tmp_path()
                sent = self._transfer_file(source, self._connection._shell.join_path(
                    self._connection._shell.tmpdir, "runtime.tar.gz"))
                self._fixup_perms2((self._connection._shell.tmpdir, sent))
            module_args["src"] = sent
            result.update(self._execute_module(module_name="rolesanywhere.fleet.python_runtime_install",
                                               module_args=module_args, task_vars=task_vars))
        finally:
            if sent is not None:
                self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
