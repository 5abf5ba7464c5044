# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether the Python library cryptography is importable where the module runs.

The module_utils that use cryptography import it inside try/except ImportError (a module must import
without it); every module that needs it calls require_cryptography() right after building its
AnsibleModule, which fails with Ansible's standard missing-library message and the fix.
"""
from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    import cryptography

    CRYPTOGRAPHY_VERSION = cryptography.__version__
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:
    CRYPTOGRAPHY_VERSION = None
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()


def require_cryptography(module):
    """Fail the module (nothing changed yet) when cryptography is missing on the host running it."""
    if CRYPTOGRAPHY_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=CRYPTOGRAPHY_IMPORT_ERROR)
