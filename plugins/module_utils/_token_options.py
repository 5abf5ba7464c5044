# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The token options every token-using module shares, and the TokenSpec built from them.

Documented by the doc fragment ``rolesanywhere.fleet.token`` (``.location`` for modules without a user PIN).
"""
from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11

# module_path is validated by _pkcs11.validate_spec, whose message names an example library path.
TOKEN_LOCATION_ARGUMENT_SPEC = dict(
    module_path=dict(type="path"),
    token_label=dict(type="str", required=True, no_log=False),
    token_env=dict(type="dict", default={}, no_log=False),
)

TOKEN_ARGUMENT_SPEC = dict(
    TOKEN_LOCATION_ARGUMENT_SPEC,
    pin=dict(type="str", no_log=True),
    pin_file=dict(type="path"),
)

TOKEN_MUTUALLY_EXCLUSIVE = [("pin", "pin_file")]
TOKEN_REQUIRED_ONE_OF = [("pin", "pin_file")]


def token_argument_spec(**extra):
    """The shared token options plus the module's own."""
    spec = {name: dict(option) for name, option in TOKEN_ARGUMENT_SPEC.items()}
    spec.update(extra)
    return spec


def token_location_argument_spec(**extra):
    spec = {name: dict(option) for name, option in TOKEN_LOCATION_ARGUMENT_SPEC.items()}
    spec.update(extra)
    return spec


def token_env_from_params(params):
    """token_env with every value as a string (YAML may give numbers)."""
    env = params.get("token_env") or {}
    return {str(name): str(value) for name, value in env.items()}


def token_spec_from_params(params):
    return _pkcs11.TokenSpec(
        module_path=params.get("module_path"),
        token_label=params["token_label"],
        pin=params.get("pin"),
        pin_file=params.get("pin_file"),
        env=token_env_from_params(params),
    )


def require_token_libraries(module):
    """fail_json with install instructions when python-pkcs11 or cryptography is missing on the host."""
    if not _pkcs11.HAS_PKCS11:
        module.fail_json(msg=missing_required_lib("python-pkcs11"), exception=str(_pkcs11.PKCS11_IMPORT_ERROR))
    if not _pkcs11.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(_pkcs11.CRYPTOGRAPHY_IMPORT_ERROR))
