# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A profile's ``credential_process`` in a user's AWS config file (``~/.aws/config``): the options, the checks
of every value that lands in the file or on the command line, and the write (root writing into the user's tree
goes through _user_files). Used by the modules aws_credential_process and rolesanywhere_rotation.

Pure Python (standard library); host-side code: Python 3.9+.
"""
from __future__ import annotations

import os
import pwd
import stat

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _credential_helper as helper
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11_names
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _safe_values as safe
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _user_files as files
from ansible_collections.rolesanywhere.fleet.plugins.module_utils._token_signer import TokenError

ARGUMENT_SPEC = dict(
    user=dict(type="str", required=True),
    config_path=dict(type="path"),
    profile=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    impl=dict(type="str", choices=["aws", "python"], default="python"),
    helper_path=dict(type="path"),
    certificate=dict(type="path"),
    intermediates=dict(type="path"),
    private_key=dict(type="str", no_log=True),
    token_label=dict(type="str", no_log=False),
    key_label=dict(type="str", no_log=False),
    key_id=dict(type="str"),
    module_path=dict(type="path"),
    pin=dict(type="str", no_log=True),
    pin_file=dict(type="path"),
    token_env=dict(type="dict", default={}, no_log=False),
    trust_anchor_arn=dict(type="str"),
    profile_arn=dict(type="str"),
    role_arn=dict(type="str"),
    region=dict(type="str"),
    endpoint=dict(type="str"),
    ca_bundle=dict(type="path"),
    session_duration=dict(type="int"),
    role_session_name=dict(type="str"),
    cache=dict(type="bool", default=False),
)
MUTUALLY_EXCLUSIVE = [("private_key", "token_label")]
REQUIRED_IF = [("state", "present", ("certificate", "trust_anchor_arn", "profile_arn", "role_arn"))]
REQUIRED_TOGETHER = [("token_label", "key_label")]


class ProfileError(Exception):
    """The profile cannot be written; the message names the problem and the fix."""


DEFAULT_HELPERS = {
    "aws": "/usr/local/bin/aws_signing_helper",
    "python": "/usr/local/bin/rolesanywhere-credential-helper",
}
PATH_OPTIONS = ("config_path", "helper_path", "certificate", "intermediates", "module_path", "pin_file", "ca_bundle")


def check_values(params):
    """Every value that lands in the INI file or the command line: ValueError names the option and the fix."""
    safe.profile_name(params["profile"])
    for option in PATH_OPTIONS:
        if params[option] is not None:
            safe.absolute_path(option, params[option])
    if params["private_key"] is not None and not params["private_key"].startswith("pkcs11:"):
        safe.absolute_path("private_key", params["private_key"])
    elif params["private_key"] is not None:
        safe.line("private_key", params["private_key"], secret=True)  # a URI may hold pin-value
    for option in ("token_label", "key_label", "key_id", "pin"):
        if params[option] is not None:
            safe.line(option, params[option], secret=option == "pin")
    for name, value in params["token_env"].items():
        safe.env_name(name)
        safe.line(f"token_env.{name}", str(value))
    if params["state"] == "absent":
        return
    regions = {safe.rolesanywhere_arn("trust_anchor_arn", params["trust_anchor_arn"], "trust-anchor"),
               safe.rolesanywhere_arn("profile_arn", params["profile_arn"], "profile")}
    safe.role_arn(params["role_arn"])
    if params["region"] is not None:
        regions.add(safe.region(params["region"]))
    if len(regions) > 1:
        raise ValueError(f"trust_anchor_arn, profile_arn and region name different regions ({', '.join(sorted(regions))}): "
                         "the trust anchor and profile must be in the region the helper calls")
    if params["endpoint"] is not None:
        safe.url("endpoint", params["endpoint"])
    if params["role_session_name"] is not None:
        safe.session_name(params["role_session_name"])


def read_pin_file(path, uid):
    """The PIN for impl aws, read without following a user's links or reading a file of another user."""
    directory, name = files.split(path)
    try:
        fd = files.open_directory(directory, uid)
        try:
            data = files.read_file(fd, name, uid, path, limit=4096, private=True)
        finally:
            os.close(fd)
    except files.UnsafePath as exc:
        raise files.UnsafePath(f"cannot read pin_file {path}: {exc}") from None
    if data is None:
        raise files.UnsafePath(f"cannot read pin_file {path}: it does not exist; write it (role token) or fix pin_file")
    pin = data.decode("utf-8", "replace").rstrip("\r\n")
    if not pin:
        raise files.UnsafePath(f"pin_file {path} is empty: write the PIN into it")
    return pin


def key_reference(params, uid):
    """The --private-key value: a file, a given URI, or a URI built from the token options."""
    if params["private_key"]:
        return params["private_key"]
    key_id = _pkcs11_names.parse_key_id(params["key_id"])
    pin_value, pin_source = params["pin"], None
    if params["impl"] == "python" and params["pin_file"]:
        pin_value, pin_source = None, params["pin_file"]
    elif params["impl"] == "aws" and pin_value is None:
        pin_value = read_pin_file(params["pin_file"], uid)
    return _pkcs11_names.pkcs11_uri(params["token_label"], params["key_label"], key_id, "private",
                                    pin_value=pin_value, pin_source=pin_source)


def desired_text(params, current, uid):
    header = "[default]" if params["profile"] == "default" else f"[profile {params['profile']}]"
    if params["state"] == "absent":
        return header, helper.remove_section(current, header), None
    command = helper.credential_process_command(
        params["impl"],
        params["helper_path"] or DEFAULT_HELPERS[params["impl"]],
        certificate=params["certificate"],
        private_key=key_reference(params, uid),
        intermediates=params["intermediates"],
        trust_anchor_arn=params["trust_anchor_arn"],
        profile_arn=params["profile_arn"],
        role_arn=params["role_arn"],
        region=params["region"],
        endpoint=params["endpoint"],
        session_duration=params["session_duration"],
        role_session_name=params["role_session_name"],
        pkcs11_lib=params["module_path"],
        ca_bundle=params["ca_bundle"],
        cache=params["cache"],
        env=params["token_env"],
    )
    values = {"credential_process": command}
    if params["region"]:
        values["region"] = params["region"]
    return header, helper.set_section_values(current, header, values), command


def attribute_changes(info, mode, uid, gid):
    if info is None:
        return ["create"]
    changes = []
    if stat.S_IMODE(info.st_mode) != mode:
        changes.append("mode")
    if (info.st_uid, info.st_gid) != (uid, gid):
        changes.append("owner")
    return changes


def read_current(directory, name, path, uid):
    """(text, directory fd or None, stat of the directory or None, stat of the file or None), safely."""
    try:
        dir_fd = files.open_directory(directory, uid)
    except files.MissingDirectory:
        return "", None, None, None
    try:
        data = files.read_file(dir_fd, name, uid, path)
    except BaseException:
        os.close(dir_fd)
        raise
    try:
        text = "" if data is None else data.decode("utf-8")
    except UnicodeDecodeError:
        os.close(dir_fd)
        raise files.UnsafePath(f"{path} is not UTF-8 text: fix or remove it") from None
    return text, dir_fd, os.fstat(dir_fd), files.entry_stat(dir_fd, name)


def check_params(params):
    """Checks beyond the argument spec, before anything is read or written."""
    if params["state"] == "present" and not (params["private_key"] or params["token_label"]):
        raise ProfileError("give the key: private_key (file or pkcs11: URI) or token_label with key_label")
    if params["token_label"] and not (params["pin"] or params["pin_file"]):
        raise ProfileError("a token key needs pin (from vault) or pin_file: the helper runs unattended")
    if params["session_duration"] is not None and not 900 <= params["session_duration"] <= 43200:
        raise ProfileError(f"session_duration {params['session_duration']} is outside 900..43200 seconds")
    try:
        check_values(params)
    except ValueError as exc:
        raise ProfileError(str(exc)) from None


def ensure(params, check_mode, diff):
    """Write the profile (validated ``params``); returns (result, warnings). ProfileError changes nothing."""
    check_params(params)
    try:
        account = pwd.getpwnam(params["user"])
    except KeyError:
        raise ProfileError(f"user {params['user']!r} does not exist on this host: create it or fix user") from None
    uid, gid = account.pw_uid, account.pw_gid
    if os.geteuid() not in (0, uid):
        raise ProfileError(f"cannot write files owned by {params['user']} as uid {os.geteuid()}: use become")
    path = params["config_path"] or os.path.join(account.pw_dir, ".aws", "config")
    directory, name = files.split(path)
    warnings = []
    dir_fd = None
    try:
        current, dir_fd, dir_info, file_info = read_current(directory, name, path, uid)
        header, wanted, command = desired_text(params, current, uid)
        absent_noop = params["state"] == "absent" and file_info is None
        content_changed = wanted != current and not absent_noop
        perm_changes = [] if absent_noop else (attribute_changes(dir_info, 0o700, uid, gid)
                                               + attribute_changes(file_info, 0o600, uid, gid))
        changed = content_changed or bool(perm_changes)
        result = dict(changed=changed, config_path=path, section=header)
        if command is not None:
            result["command"] = helper.mask_pin(command)
        if diff:
            result["diff"] = dict(before_header=path, after_header=path,
                                  before=helper.mask_pin(current), after=helper.mask_pin(wanted))
        if command is not None and "pin-value=" in command:
            warnings.append(
                f"The token PIN is in {path} (0600, owned by {params['user']}) and, while AWS's helper runs, "
                "on its command line, readable by other local users unless /proc is mounted hidepid=2: "
                "AWS's aws_signing_helper reads the PIN only from the key URI. impl python with pin_file "
                "keeps it out of both.")
        if changed and not check_mode:
            if dir_fd is None:
                dir_fd = files.open_directory(directory, uid, gid, create_mode=0o700)
                if files.entry_stat(dir_fd, name) is not None:
                    raise files.UnsafePath(f"{path} appeared during the run: run again")
            files.set_directory(dir_fd, 0o700, uid, gid)
            files.write_file(dir_fd, name, wanted.encode("utf-8"), 0o600, uid, gid, path)
    except (helper.HelperError, TokenError, files.UnsafePath) as exc:
        raise ProfileError(str(exc)) from None
    except OSError as exc:
        raise ProfileError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    return result, warnings
