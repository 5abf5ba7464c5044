#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: rolesanywhere_session
short_description: Prove a host's IAM Roles Anywhere identity with CreateSession
version_added: 0.1.0
description:
  - On the managed host, signs an IAM Roles Anywhere CreateSession request with the host's certificate and its
    key (on a PKCS#11 token, or a PEM file) and returns the assumed role ARN, the subject and the expiration.
  - Sends the request exactly as AWS's C(aws_signing_helper) does (the collection's one SigV4-X509 signer).
  - "Temporary credentials are returned only with O(return_credentials=true), and then only from a task with
    C(no_log: true)."
  - With O(verify_identity=true) the credentials are also used for C(sts:GetCallerIdentity) (plain SigV4 from the
    standard library; the host needs no boto3).
  - The module never changes anything, so it always reports C(changed=false) and runs in check mode too.
options:
  certificate:
    description: The client certificate (PEM file).
    type: path
    required: true
  intermediates:
    description: PEM bundle of intermediate CA certificates, sent as C(X-Amz-X509-Chain).
    type: path
  private_key:
    description: A PEM private key file. Mutually exclusive with O(token_label).
    type: path
  private_key_passphrase:
    description: Passphrase of an encrypted PKCS#8 O(private_key).
    type: str
  module_path:
    description: The token's PKCS#11 library.
    type: path
  token_label:
    description: The token holding the key (exact label).
    type: str
  pin:
    description: The token user PIN.
    type: str
  pin_file:
    description: A file (mode 0600) holding the token user PIN.
    type: path
  token_env:
    description: Environment for the PKCS#11 library, for example C(SOFTHSM2_CONF).
    type: dict
    default: {}
  key_label:
    description: CKA_LABEL of the private key on the token.
    type: str
  key_id:
    description: CKA_ID of the private key as hex, for example V('01').
    type: str
  trust_anchor_arn:
    description: The trust anchor ARN.
    type: str
    required: true
  profile_arn:
    description: The Roles Anywhere profile ARN.
    type: str
    required: true
  role_arn:
    description: The role to assume.
    type: str
    required: true
  region:
    description: Signing region; defaults to the trust anchor's region.
    type: str
  endpoint:
    description: The Roles Anywhere endpoint URL; defaults to the region's public endpoint.
    type: str
  ca_bundle:
    description: CA bundle to verify O(endpoint) (default the system trust store).
    type: path
  validate_certs:
    description: Verify the endpoint's TLS certificate. Turn off only for throw-away test endpoints.
    type: bool
    default: true
  session_duration:
    description: Requested session duration in seconds (900 to 43200).
    type: int
    default: 3600
  role_session_name:
    description: Role session name (the profile must accept it).
    type: str
  return_credentials:
    description: "Return the temporary credentials. The task must set C(no_log: true)."
    type: bool
    default: false
  verify_identity:
    description: Call C(sts:GetCallerIdentity) with the credentials and return the caller's ARN.
    type: bool
    default: false
  sts_endpoint:
    description: STS endpoint URL for O(verify_identity) (default the region's STS endpoint).
    type: str
author:
  - rolesanywhere.fleet maintainers (@rolesanywhere-fleet)
extends_documentation_fragment:
  - rolesanywhere.fleet.attributes.no_diff
"""

EXAMPLES = r"""
- name: Prove the host's identity with its token key
  rolesanywhere.fleet.rolesanywhere_session:
    certificate: /etc/rolesanywhere/host.pem
    intermediates: /etc/rolesanywhere/chain.pem
    module_path: /usr/lib/softhsm/libsofthsm2.so
    token_label: host
    pin_file: /etc/rolesanywhere/pin
    key_label: ra-2026
    trust_anchor_arn: "{{ trust_anchor_arn }}"
    profile_arn: "{{ profile_arn }}"
    role_arn: "{{ role_arn }}"
    verify_identity: true
  register: session

- name: Hand temporary credentials to a later task
  rolesanywhere.fleet.rolesanywhere_session:
    certificate: /etc/rolesanywhere/host.pem
    private_key: /etc/rolesanywhere/host.key
    trust_anchor_arn: "{{ trust_anchor_arn }}"
    profile_arn: "{{ profile_arn }}"
    role_arn: "{{ role_arn }}"
    return_credentials: true
  no_log: true
  register: creds
"""

RETURN = r"""
assumed_role_arn:
  description: The assumed-role ARN the session runs as.
  returned: success
  type: str
  sample: arn:aws:sts::123456789012:assumed-role/app/2001
assumed_role_id:
  description: The assumed role ID.
  returned: success
  type: str
role_arn:
  description: The role ARN the service reports.
  returned: success
  type: str
subject_arn:
  description: The Roles Anywhere subject ARN of the certificate.
  returned: success
  type: str
source_identity:
  description: The source identity (the certificate's subject CN).
  returned: success
  type: str
expiration:
  description: When the credentials expire (RFC 3339).
  returned: success
  type: str
  sample: "2026-11-28T12:00:00Z"
certificate_serial:
  description: The certificate serial in decimal (the request's Credential= value).
  returned: success
  type: str
certificate_subject:
  description: The certificate subject (RFC 4514).
  returned: success
  type: str
caller_identity:
  description: C(sts:GetCallerIdentity) with the credentials (C(arn), C(account), C(user_id)).
  returned: when O(verify_identity=true)
  type: dict
credentials:
  description: C(access_key_id), C(secret_access_key), C(session_token), C(expiration).
  returned: when O(return_credentials=true)
  type: dict
"""

from contextlib import contextmanager

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rolesanywhere.fleet.plugins.module_utils._cryptography import require_cryptography
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _sigv4x509 as sigv4
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _token_options


@contextmanager
def signing_key(params):
    """The private key to sign with: from a PEM file, or on the token for as long as the session is open."""
    if params["private_key"]:
        yield sigv4.load_private_key_file(params["private_key"], params["private_key_passphrase"])
        return
    spec = _token_options.token_spec_from_params(params)
    key_id = _pkcs11.parse_key_id(params["key_id"])
    with _pkcs11.open_token_session(spec, rw=False) as session:
        yield _pkcs11.token_private_key(session, params["key_label"], key_id)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            certificate=dict(type="path", required=True),
            intermediates=dict(type="path"),
            private_key=dict(type="path"),
            private_key_passphrase=dict(type="str", no_log=True),
            module_path=dict(type="path"),
            token_label=dict(type="str", no_log=False),
            pin=dict(type="str", no_log=True),
            pin_file=dict(type="path"),
            token_env=dict(type="dict", default={}, no_log=False),
            key_label=dict(type="str", no_log=False),
            key_id=dict(type="str"),
            trust_anchor_arn=dict(type="str", required=True),
            profile_arn=dict(type="str", required=True),
            role_arn=dict(type="str", required=True),
            region=dict(type="str"),
            endpoint=dict(type="str"),
            ca_bundle=dict(type="path"),
            validate_certs=dict(type="bool", default=True),
            session_duration=dict(type="int", default=3600),
            role_session_name=dict(type="str"),
            return_credentials=dict(type="bool", default=False),
            verify_identity=dict(type="bool", default=False),
            sts_endpoint=dict(type="str"),
        ),
        required_one_of=[("private_key", "token_label")],
        mutually_exclusive=[("private_key", "token_label"), ("pin", "pin_file")],
        required_by={"token_label": ("module_path", "key_label")},
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params
    if params["token_label"]:
        _token_options.require_token_libraries(module)
    if params["return_credentials"] and not module.no_log:
        module.fail_json(msg="return_credentials needs no_log: true on the task, so the credentials are never logged")
    if not 900 <= params["session_duration"] <= 43200:
        module.fail_json(msg=f"session_duration {params['session_duration']} is outside 900..43200 seconds")
    try:
        certificate = sigv4.load_certificate_file(params["certificate"])
        sigv4.check_validity(certificate)
        chain = sigv4.load_chain_file(params["intermediates"]) if params["intermediates"] else []
        with signing_key(params) as key:
            sigv4.check_key_matches(key, certificate)
            session = sigv4.create_session(
                key,
                certificate,
                trust_anchor_arn=params["trust_anchor_arn"],
                profile_arn=params["profile_arn"],
                role_arn=params["role_arn"],
                region=params["region"],
                endpoint=params["endpoint"],
                chain=chain,
                duration_seconds=params["session_duration"],
                role_session_name=params["role_session_name"],
                ca_bundle=params["ca_bundle"],
                verify=params["validate_certs"],
            )
        result = dict(
            changed=False,
            assumed_role_arn=session.assumed_role_arn,
            assumed_role_id=session.assumed_role_id,
            role_arn=session.role_arn,
            subject_arn=session.subject_arn,
            source_identity=session.source_identity,
            expiration=session.expiration,
            certificate_serial=str(certificate.serial_number),
            certificate_subject=sigv4.certificate_subject(certificate),
        )
        if params["verify_identity"]:
            region = params["region"] or sigv4.parse_arn(params["trust_anchor_arn"], "trust anchor ARN").region
            result["caller_identity"] = sigv4.get_caller_identity(
                session, region, endpoint=params["sts_endpoint"], ca_bundle=params["ca_bundle"],
                verify=params["validate_certs"])
    except sigv4.ServiceError as exc:
        module.fail_json(msg=str(exc), status=exc.status, error_type=exc.error_type)
    except (sigv4.RolesAnywhereError, _pkcs11.TokenError) as exc:
        module.fail_json(msg=str(exc))
    if params["return_credentials"]:
        result["credentials"] = dict(access_key_id=session.access_key_id, secret_access_key=session.secret_access_key,
                                     session_token=session.session_token, expiration=session.expiration)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
