# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Values that land inside another format (an INI file, a shell-quoted command line, a unit line, a URI).

Each check accepts only what can be written there without adding a section, a key, an argument or a directive,
and raises ValueError with a message that names the option, the problem and the fix. Pure Python; host-side.
"""
from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PROFILE = re.compile(r"^[A-Za-z0-9_.@+:/-]{1,128}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")
_PARTITION = r"aws(-cn|-us-gov|-iso(-[a-z])?)?"
_RA_ARN = re.compile(r"^arn:" + _PARTITION + r":rolesanywhere:(?P<region>[a-z0-9-]+):[0-9]{12}:"
                     r"(alias/)?(?P<kind>trust-anchor|profile)/[A-Za-z0-9_.-]{1,128}$")
_ROLE_ARN = re.compile(r"^arn:" + _PARTITION + r":iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")
_SESSION_NAME = re.compile(r"^[A-Za-z0-9+=,.@_][A-Za-z0-9+=,.@_-]{1,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_URL = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/%-]*)?$")


def line(option, value, secret=False):
    """One physical line: no line break or other control character (each would start a new key or directive).
    A ``secret`` value is never quoted in the message (its escaped form would slip past Ansible's masking)."""
    if not isinstance(value, str):
        raise ValueError(f"{option} must be a string, not {type(value).__name__}")
    found = _CONTROL.search(value)
    if found:
        where = f"at character {found.start() + 1}" if secret else repr(value)
        raise ValueError(f"{option} contains a line break or control character ({where}): remove it")
    return value


def argument(option, value):
    """A command-line value: one line, and not starting with '-' (the helper would read it as a flag)."""
    line(option, value)
    if not value or value.startswith("-"):
        raise ValueError(f"{option} {value!r} is empty or starts with '-' and would be read as a flag: fix {option}")
    return value


def absolute_path(option, value):
    argument(option, value)
    if not value.startswith("/"):
        raise ValueError(f"{option} {value!r} is not an absolute path: give the full path on the host")
    return value


def profile_name(value):
    line("profile", value)
    if not _PROFILE.match(value):
        raise ValueError(f"profile {value!r} cannot be written as an INI section name: use letters, digits and "
                         "_ . @ + : / - (no spaces or brackets)")
    return value


def region(value):
    line("region", value)
    if not _REGION.match(value):
        raise ValueError(f"region {value!r} is not an AWS region name such as eu-central-1: fix region")
    return value


def rolesanywhere_arn(option, value, kind):
    """An IAM Roles Anywhere ARN of ``kind`` (trust-anchor, profile); returns its region."""
    line(option, value)
    match = _RA_ARN.match(value)
    if not match or match.group("kind") != kind:
        raise ValueError(f"{option} {value!r} is not a Roles Anywhere {kind} ARN "
                         f"(arn:aws:rolesanywhere:REGION:ACCOUNT:{kind}/ID): fix {option}")
    return match.group("region")


def role_arn(value):
    line("role_arn", value)
    if not _ROLE_ARN.match(value):
        raise ValueError(f"role_arn {value!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME): fix role_arn")
    return value


def session_name(value):
    line("role_session_name", value)
    if not _SESSION_NAME.match(value):
        raise ValueError(f"role_session_name {value!r} must be 2 to 64 of A-Z a-z 0-9 + = , . @ _ - "
                         "(not starting with -): fix role_session_name")
    return value


def env_name(value):
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        raise ValueError(f"environment variable name {value!r} is invalid: use letters, digits and _, not "
                         "starting with a digit")
    return value


def url(option, value):
    line(option, value)
    if not _URL.match(value):
        raise ValueError(f"{option} {value!r} is not a plain http(s) URL (scheme, host, port, path; no query, "
                         f"spaces or quotes): fix {option}")
    return value
