"""The bundled helper's pure parts: RFC 7512 URIs, PIN masking, the credential_process line, INI editing."""
import shlex

import pytest

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _credential_helper as helper


def test_pkcs11_uri_attributes_are_percent_decoded():
    uri = helper.parse_pkcs11_uri("pkcs11:token=ra%20test;id=%01%FF;object=client;type=private"
                                  "?pin-source=file:/etc/ra/pin&module-path=/usr/lib/softhsm/libsofthsm2.so")
    assert (uri.token, uri.label, uri.key_id) == ("ra test", "client", b"\x01\xff")
    assert uri.pin_file() == "/etc/ra/pin"
    assert uri.query["module-path"] == "/usr/lib/softhsm/libsofthsm2.so"


@pytest.mark.parametrize("source, path", [("file:/p", "/p"), ("file:///p", "/p"), ("file://localhost/p", "/p"),
                                          ("file:/a%20b", "/a b")])
def test_pin_source_file_forms(source, path):
    assert helper.parse_pkcs11_uri(f"pkcs11:token=t;object=k?pin-source={source}").pin_file() == path


@pytest.mark.parametrize("uri, message", [
    ("pkcs11:token=t;object=k;pin-value=1234", "belongs in the URI query"),
    ("pkcs11:token=t;object=k?pin-value=1&pin-source=file:/p", "both pin-value and pin-source"),
    ("pkcs11:token=t;object", "has no value"),
    ("file:/x", "not a pkcs11: URI"),
])
def test_bad_uris_are_refused(uri, message):
    with pytest.raises(helper.HelperError, match=message):
        helper.parse_pkcs11_uri(uri)


def test_remote_or_non_file_pin_sources_are_refused():
    with pytest.raises(helper.HelperError, match="remote host"):
        helper.parse_pkcs11_uri("pkcs11:token=t;object=k?pin-source=file://other/p").pin_file()
    with pytest.raises(helper.HelperError, match="not supported"):
        helper.parse_pkcs11_uri("pkcs11:token=t;object=k?pin-source=https://x/p").pin_file()


def test_pins_are_masked_and_redacted():
    line = "helper --private-key 'pkcs11:token=t;object=k?pin-value=9731&module-path=/m' x"
    assert helper.mask_pin(line) == "helper --private-key 'pkcs11:token=t;object=k?pin-value=********&module-path=/m' x"
    assert helper.redact_uri("pkcs11:token=t;object=k?pin-value=9731&module-path=/m") == \
        "pkcs11:token=t;object=k?module-path=/m"
    assert helper.redact_uri("pkcs11:token=t;object=k?pin-value=9731") == "pkcs11:token=t;object=k"


def test_credential_process_line_is_one_line_and_splits_back():
    line = helper.credential_process_command(
        "python", "/usr/local/bin/rolesanywhere-credential-helper", certificate="/etc/ra/host cert.pem",
        private_key="pkcs11:token=t;object=k?pin-source=file:/etc/ra/pin", trust_anchor_arn="arn:a",
        profile_arn="arn:p", role_arn="arn:r", session_duration=900, cache=True, env={"SOFTHSM2_CONF": "/x y"})
    assert "\n" not in line
    words = shlex.split(line)
    assert words[:3] == ["/usr/bin/env", "SOFTHSM2_CONF=/x y", "/usr/local/bin/rolesanywhere-credential-helper"]
    opts = helper.build_parser().parse_args(words[3:])
    assert opts.certificate == "/etc/ra/host cert.pem" and opts.session_duration == 900 and opts.cache
    with pytest.raises(helper.HelperError, match="ignores pin-source"):
        helper.credential_process_command("aws", "h", certificate="c", trust_anchor_arn="a", profile_arn="p",
                                          role_arn="r", private_key="pkcs11:token=t;object=k?pin-source=file:/p")


def test_credentials_file_editing_matches_the_go_helper():
    text = "[default]\nregion = x\naws_access_key_id = OLD\n\n[ra]\noutput = json\naws_session_token = OLD\n"
    values = {"aws_access_key_id": "A", "aws_secret_access_key": "S", "aws_session_token": "T"}
    result = helper.set_section_values(text, "[ra]", values)
    assert result == ("[default]\nregion = x\naws_access_key_id = OLD\n\n[ra]\noutput = json\naws_session_token = T\n"
                      "aws_access_key_id = A\naws_secret_access_key = S\n")
    assert helper.set_section_values(result, "[ra]", values) == result
    assert helper.set_section_values("", "[ra]", {"a": "1"}) == "[ra]\na = 1\n"
