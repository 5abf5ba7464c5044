"""aws_credential_process: ~/.aws/config wiring, check mode, idempotence, diff with the PIN masked, file modes."""
import os
import pwd
import shlex
import stat

import pytest

from tests.support.ansible import run_module

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _credential_helper as helper

ANCHOR = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/aaaa"
PROFILE = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/bbbb"
ROLE = "arn:aws:iam::111122223333:role/app"
PIN = "97315"
NOBODY = pwd.getpwnam("nobody")


def args(config, **extra):
    values = dict(
        user="nobody",
        config_path=str(config),
        profile="ra",
        impl="python",
        certificate="/etc/rolesanywhere/host.pem",
        intermediates="/etc/rolesanywhere/chain.pem",
        token_label="host token",
        key_label="ra-2026",
        key_id="0a1b",
        module_path="/usr/lib/softhsm/libsofthsm2.so",
        pin_file="/home/app/pin",
        token_env={"SOFTHSM2_CONF": "/etc/softhsm/app.conf"},
        trust_anchor_arn=ANCHOR,
        profile_arn=PROFILE,
        role_arn=ROLE,
        region="us-east-1",
        cache=True,
    )
    values.update(extra)
    return {name: value for name, value in values.items() if value is not None}


def section_lines(text, header):
    lines = text.splitlines()
    start = lines.index(header)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    return lines[start + 1:end]


EXISTING = """# managed by hand: keep this comment
[default]
region = eu-west-1
output = json

[profile ra]
# operator note
credential_process = /old/helper --stale
output = text

[profile other]
role_arn = arn:aws:iam::111122223333:role/other
source_profile = default
"""


def test_check_apply_rerun_keeps_everything_else(tmp_path):
    config = tmp_path / ".aws" / "config"
    config.parent.mkdir(mode=0o755)
    config.write_text(EXISTING)
    os.chmod(config, 0o644)

    checked = run_module("aws_credential_process", args(config), check_mode=True, diff=True)
    assert checked.changed and not checked.failed, checked
    assert config.read_text() == EXISTING
    assert stat.S_IMODE(config.stat().st_mode) == 0o644

    applied = run_module("aws_credential_process", args(config), diff=True)
    assert applied.changed and not applied.failed, applied
    text = config.read_text()
    # everything outside the managed keys survives
    assert text.startswith("# managed by hand: keep this comment\n[default]\nregion = eu-west-1\noutput = json\n")
    assert "[profile other]\nrole_arn = arn:aws:iam::111122223333:role/other\nsource_profile = default\n" in text
    lines = section_lines(text, "[profile ra]")
    assert "# operator note" in lines and "output = text" in lines and "region = us-east-1" in lines
    process = [line for line in lines if line.startswith("credential_process")]
    assert len(process) == 1 and "/old/helper" not in text
    words = shlex.split(process[0].split(" = ", 1)[1])
    assert words[:2] == ["/usr/bin/env", "SOFTHSM2_CONF=/etc/softhsm/app.conf"]
    assert words[2] == "/usr/local/bin/rolesanywhere-credential-helper"
    # the line is exactly what the bundled helper's parser expects
    opts = helper.build_parser().parse_args(words[3:])
    assert opts.command == "credential-process" and opts.cache and opts.pkcs11_lib.endswith("libsofthsm2.so")
    assert opts.private_key == "pkcs11:token=host%20token;id=%0A%1B;object=ra-2026;type=private?pin-source=file:/home/app/pin"
    assert (opts.trust_anchor_arn, opts.profile_arn, opts.role_arn) == (ANCHOR, PROFILE, ROLE)
    assert opts.intermediates == "/etc/rolesanywhere/chain.pem"
    # modes and owner
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert (config.stat().st_uid, config.stat().st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid)
    assert config.parent.stat().st_uid == NOBODY.pw_uid

    rerun = run_module("aws_credential_process", args(config), diff=True)
    assert not rerun.changed and not rerun.failed, rerun
    assert config.read_text() == text


def test_aws_impl_puts_pin_in_uri_and_masks_it(tmp_path):
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    os.chmod(pin_file, 0o600)
    config = tmp_path / "cfg" / "config"
    options = args(config, impl="aws", pin_file=str(pin_file), cache=False, ca_bundle="/etc/ra/ca.pem")
    result = run_module("aws_credential_process", options, check_mode=True, diff=True)
    assert result.changed and not config.exists()
    assert PIN not in result["raw_stdout"]
    assert "pin-value=********" in result["diff"]["after"]
    result = run_module("aws_credential_process", options, diff=True)
    assert result.changed and PIN not in result["raw_stdout"]
    assert "pin-value=********" in result["command"]
    line = section_lines(config.read_text(), "[profile ra]")[0]
    words = shlex.split(line.split(" = ", 1)[1])
    assert words[:3] == ["/usr/bin/env", "SOFTHSM2_CONF=/etc/softhsm/app.conf", "SSL_CERT_FILE=/etc/ra/ca.pem"]
    assert words[3] == "/usr/local/bin/aws_signing_helper"
    key = words[words.index("--private-key") + 1]
    assert key.endswith(f"?pin-value={PIN}") and "--cache" not in words
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert not run_module("aws_credential_process", options).changed
    # Both PIN sources in one task (roles that serve either implementation): aws takes pin, python pin_file.
    both = dict(options, pin="24680")
    assert run_module("aws_credential_process", both).changed
    assert "pin-value=24680" in section_lines(config.read_text(), "[profile ra]")[0]
    python = dict(both, impl="python")
    assert run_module("aws_credential_process", python).changed
    line = section_lines(config.read_text(), "[profile ra]")[0]
    assert f"pin-source=file:{pin_file}" in line and "pin-value" not in line
    # A PIN with a line break is refused without quoting it (its escaped form would slip past the masking).
    refused = run_module("aws_credential_process", dict(both, pin="2468\n13579"))
    assert refused.failed and "pin contains a line break or control character (at character 5)" in refused["msg"]
    assert "2468" not in refused["raw_stdout"] and "13579" not in refused["raw_stdout"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (dict(impl="aws", pin_file=None, pin=PIN), "no credential cache"),
        (dict(impl="aws"), "cannot read pin_file /home/app/pin"),
        (dict(pin_file=None, pin=None), "needs pin"),
        (dict(session_duration=60), "outside 900..43200"),
        (dict(user="no-such-user-ra"), "does not exist"),
        (dict(key_id="xyz"), "not hex"),
    ],
)
def test_bad_input_fails_and_changes_nothing(tmp_path, extra, message):
    config = tmp_path / "config"
    config.write_text(EXISTING)
    result = run_module("aws_credential_process", args(config, **extra))
    assert result.failed and message in result["msg"], result
    assert config.read_text() == EXISTING


def test_absent_removes_only_the_profile(tmp_path):
    config = tmp_path / "config"
    config.write_text(EXISTING)
    result = run_module("aws_credential_process", dict(user="nobody", config_path=str(config), profile="ra",
                                                       state="absent"), check_mode=True, diff=True)
    assert result.changed and config.read_text() == EXISTING
    result = run_module("aws_credential_process", dict(user="nobody", config_path=str(config), profile="ra",
                                                       state="absent"))
    assert result.changed
    text = config.read_text()
    assert "[profile ra]" not in text and "operator note" not in text
    assert "[default]" in text and "[profile other]" in text and text.startswith("# managed by hand")
    assert not run_module("aws_credential_process", dict(user="nobody", config_path=str(config), profile="ra",
                                                         state="absent")).changed
