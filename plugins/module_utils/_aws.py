# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one AWS client layer (controller side, Ansible-aware).

- ``AWSModule``: AnsibleModule plus the common connection options, a boto3 client factory and one error path.
- ``RetryingClient``: every call retried with full-jitter exponential backoff on throttling, 5xx and
  connection errors; any other failure becomes ``AWSError`` (code + message) exactly once.
- ``ensure_state``: the describe / ensure_present / ensure_absent shape shared by the resource modules,
  with check mode (predicted result, no mutating calls) and diff {before, after}.
- Helpers: tags, IAM policy documents, durations, CRLs checked against a trust anchor's CA. Modules return
  explicit snake_case views of the resources (the same dicts they compare and diff), not converted API records.
"""
from __future__ import annotations

import datetime
import json
import random
import time

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.rolesanywhere.fleet.plugins.module_utils._cryptography import require_cryptography

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
except ImportError:  # the modules report it: _cryptography.require_cryptography
    pass

try:
    import boto3
    import botocore.config
    import botocore.exceptions
except ImportError:  # reported by AWSModule with the fix
    boto3 = None

AWS_CONNECTION_ARGSPEC = dict(
    region=dict(type="str", aliases=["aws_region"], fallback=(env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION"])),
    endpoint_url=dict(type="str", aliases=["aws_endpoint_url"], fallback=(env_fallback, ["AWS_ENDPOINT_URL"])),
    endpoint_urls=dict(type="dict", default={}),
    profile=dict(type="str", aliases=["aws_profile"], fallback=(env_fallback, ["AWS_PROFILE"])),
    access_key=dict(
        type="str", no_log=True, aliases=["aws_access_key_id"], fallback=(env_fallback, ["AWS_ACCESS_KEY_ID"])
    ),
    secret_key=dict(
        type="str", no_log=True, aliases=["aws_secret_access_key"], fallback=(env_fallback, ["AWS_SECRET_ACCESS_KEY"])
    ),
    session_token=dict(
        type="str", no_log=True, aliases=["aws_session_token"], fallback=(env_fallback, ["AWS_SESSION_TOKEN"])
    ),
    aws_ca_bundle=dict(type="path", fallback=(env_fallback, ["AWS_CA_BUNDLE"])),
    validate_certs=dict(type="bool", default=True),
)

TAGS_ARGSPEC = dict(
    tags=dict(type="dict"),
    purge_tags=dict(type="bool", default=True),
)

# Error codes that mean "try again later" whatever the service.
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
    }
)

SESSION_DURATION_MIN = 900
SESSION_DURATION_MAX = 43200


class AWSError(Exception):
    """An AWS call (or a check before one) failed; ``str()`` is safe to show and names the fix."""

    def __init__(self, message, code=None, operation=None, status=None):
        super().__init__(message)
        self.code = code
        self.operation = operation
        self.status = status

    def as_result(self):
        error = {"code": self.code, "message": str(self), "operation": self.operation, "http_status": self.status}
        return {"error": error}


def error_code(exc):
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def is_retryable(exc):
    if isinstance(exc, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        return True
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error_code(exc) in RETRYABLE_CODES or status >= 500 or status == 429
    return False


def jittered_backoff(call, retries=8, base_delay=0.5, max_delay=20.0):
    """Run ``call()``; on a retryable error sleep a full-jitter delay (uniform in 0..min(max, base*2^n)) and retry."""
    for attempt in range(retries + 1):
        try:
            return call()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            if attempt == retries or not is_retryable(exc):
                raise
        time.sleep(random.uniform(0, min(max_delay, base_delay * 2**attempt)))


def to_aws_error(exc, operation):
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = err.get("Message") or str(exc)
        return AWSError(f"{operation} failed: {err.get('Code')}: {message}", err.get("Code"), operation, status)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return AWSError(
            f"{operation} failed: no AWS credentials; set access_key/secret_key, profile, or the AWS_* environment",
            "NoCredentials",
            operation,
        )
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return AWSError(f"{operation} failed: no region; set region or AWS_REGION", "NoRegion", operation)
    return AWSError(f"{operation} failed: {exc}", type(exc).__name__, operation)


class RetryingClient:
    """A boto3 client whose every operation is retried with jittered backoff and raises only AWSError."""

    def __init__(self, client, retries=8):
        self.raw = client
        self.retries = retries

    def __getattr__(self, name):
        operation = getattr(self.raw, name)

        def call(*args, **kwargs):
            try:
                return jittered_backoff(lambda: operation(*args, **kwargs), retries=self.retries)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                raise to_aws_error(exc, self.raw.meta.method_to_api_mapping.get(name, name)) from None

        return call

    def paginate(self, operation, result_key, **kwargs):
        """All items of a paginated list operation; a failed page restarts the listing (a generator that
        raised cannot resume)."""

        def listing():
            pages = self.raw.get_paginator(operation).paginate(**kwargs)
            return [item for page in pages for item in page.get(result_key, [])]

        try:
            return jittered_backoff(listing, retries=self.retries)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise to_aws_error(exc, self.raw.meta.method_to_api_mapping.get(operation, operation)) from None


def client_factory(params, service, retries=8):
    """A RetryingClient for ``service`` from connection parameters (the AWS_CONNECTION_ARGSPEC keys)."""
    endpoint = (params.get("endpoint_urls") or {}).get(service)
    if endpoint is None and params.get("_primary_service") == service:
        endpoint = params.get("endpoint_url")
    verify = params.get("aws_ca_bundle") or params.get("validate_certs", True)
    # botocore retries off: RetryingClient owns retrying, so attempts don't multiply.
    config = botocore.config.Config(
        retries={"total_max_attempts": 1, "mode": "standard"}, user_agent_extra="rolesanywhere.fleet"
    )
    try:
        session = boto3.session.Session(
            aws_access_key_id=params.get("access_key"),
            aws_secret_access_key=params.get("secret_key"),
            aws_session_token=params.get("session_token"),
            profile_name=params.get("profile"),
            region_name=params.get("region"),
        )
        client = session.client(service, endpoint_url=endpoint or None, verify=verify, config=config)
        return RetryingClient(client, retries)
    except botocore.exceptions.BotoCoreError as exc:
        raise to_aws_error(exc, f"creating the {service} client") from None


class AWSModule(AnsibleModule):
    """AnsibleModule with the AWS connection options; ``client()`` gives retrying clients; ``fail_aws`` one error path.

    ``service`` is the module's own service: ``endpoint_url`` applies to it, other services use ``endpoint_urls``.
    """

    def __init__(self, service, argument_spec, **kwargs):
        spec = dict(AWS_CONNECTION_ARGSPEC)
        spec.update(argument_spec)
        super().__init__(argument_spec=spec, **kwargs)
        if boto3 is None:
            self.fail_json(msg=missing_required_lib("boto3"))
        require_cryptography(self)
        self.service = service
        self._clients = {}

    def client(self, service=None, retries=8):
        """A RetryingClient for ``service`` (default: the module's own); fewer ``retries`` for optional calls."""
        key = (service or self.service, retries)
        if key not in self._clients:
            params = dict(self.params, _primary_service=self.service)
            try:
                self._clients[key] = client_factory(params, key[0], retries)
            except AWSError as exc:
                self.fail_aws(exc)
        return self._clients[key]

    def fail_aws(self, exc, **result):
        result.update(exc.as_result())
        self.fail_json(msg=str(exc), **result)


# ---- describe / ensure_present / ensure_absent -------------------------------------------------------------


class Resource:
    """One named AWS resource as a module manages it.

    ``describe()`` returns the current comparable view (a plain dict of managed fields) or None;
    ``desired(current)`` the view after ensure_present; create/update/delete make the calls.
    ``validate()`` runs first, in check mode too, and raises AWSError on bad input.
    """

    def validate(self):
        pass

    def describe(self):
        raise NotImplementedError

    def desired(self, current):
        raise NotImplementedError

    def create(self, desired):
        raise NotImplementedError

    def update(self, current, desired):
        raise NotImplementedError

    def delete(self, current):
        raise NotImplementedError


def ensure_state(module, resource, state):
    """Bring ``resource`` to ``state``; return (changed, before, after). No mutating call in check mode."""
    if state == "present":
        resource.validate()
    before = resource.describe()
    if state == "absent":
        if before is None:
            return False, None, None
        if not module.check_mode:
            resource.delete(before)
        return True, before, None
    after = resource.desired(before)
    if before == after:
        return False, before, before
    if not module.check_mode:
        if before is None:
            resource.create(after)
        else:
            resource.update(before, after)
        after = resource.describe()
    return True, before, after


def run_resource_module(module, resource, result_key):
    """ensure_state + the result shape every resource module returns."""
    try:
        changed, before, after = ensure_state(module, resource, module.params["state"])
    except AWSError as exc:
        module.fail_aws(exc)
    result = {"changed": changed, result_key: after or {}}
    if module._diff:
        result["diff"] = {"before": before or {}, "after": after or {}}
    module.exit_json(**result)


# ---- conversions --------------------------------------------------------------------------------------------


def tag_list_to_dict(tags, key="key", value="value"):
    return {t[key]: t.get(value, "") for t in tags or []}


def tag_dict_to_list(tags, key="key", value="value"):
    return [{key: k, value: str(v)} for k, v in sorted((tags or {}).items())]


def compare_tags(current, desired, purge=True):
    """Tags to set (dict) and tag keys to remove (sorted list); ``aws:`` tags are never removed."""
    current = current or {}
    desired = {k: str(v) for k, v in (desired or {}).items()}
    to_set = {k: v for k, v in desired.items() if current.get(k) != v}
    to_unset = sorted(k for k in current if purge and k not in desired and not k.startswith("aws:"))
    return to_set, to_unset


def desired_tags(current, tags, purge):
    """The tag dict after applying ``tags`` (None = leave tags alone) to ``current``."""
    if tags is None:
        return dict(current or {})
    to_set, to_unset = compare_tags(current, tags, purge)
    out = {k: v for k, v in (current or {}).items() if k not in to_unset}
    out.update(to_set)
    return out


# ---- policies and validation ----------------------------------------------------------------------------------


def load_policy(value, what):
    """A policy document (JSON text or dict) as a dict; AWSError naming ``what`` when it is not a policy."""
    if isinstance(value, dict):
        doc = value
    else:
        try:
            doc = json.loads(value)
        except (TypeError, ValueError) as exc:
            raise AWSError(
                f"{what} is not valid JSON ({exc}); give a JSON object with Version and Statement, "
                "or a YAML dict (it is converted)",
                "MalformedPolicyDocument",
            ) from None
    if not isinstance(doc, dict) or "Statement" not in doc:
        raise AWSError(f"{what} must be a JSON object with a Statement list", "MalformedPolicyDocument")
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    for index, statement in enumerate(statements):
        if not isinstance(statement, dict) or statement.get("Effect") not in ("Allow", "Deny"):
            raise AWSError(
                f"{what}: Statement[{index}] needs Effect Allow or Deny", "MalformedPolicyDocument"
            )
        if not ({"Action", "NotAction"} & set(statement)):
            raise AWSError(f"{what}: Statement[{index}] needs Action or NotAction", "MalformedPolicyDocument")
    return doc


def canonical_policy(doc):
    """A form in which two equivalent policies compare equal: one-item lists as scalars, lists sorted."""
    if isinstance(doc, dict):
        return {k: canonical_policy(v) for k, v in doc.items()}
    if isinstance(doc, list):
        items = [canonical_policy(v) for v in doc]
        if len(items) == 1:
            return items[0]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return doc


def policy_json(doc):
    """Compact, stable JSON for a policy (what is sent and what is compared)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def check_duration(value, what="duration_seconds"):
    if value is not None and not SESSION_DURATION_MIN <= value <= SESSION_DURATION_MAX:
        raise AWSError(
            f"{what}={value} is out of range: IAM Roles Anywhere sessions last "
            f"{SESSION_DURATION_MIN}..{SESSION_DURATION_MAX} seconds (15 minutes to 12 hours)",
            "ValidationException",
        )


def arn_resource_name(arn, kind):
    """``name`` from ``arn:<partition>:<svc>:...:<kind>/<path>/<name>``; AWSError when ``arn`` is not of that kind."""
    parts = (arn or "").split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not parts[5].startswith(kind + "/"):
        raise AWSError(f"{arn!r} is not a {kind} ARN (arn:aws:...:{kind}/NAME)", "InvalidArn")
    return parts[5].rsplit("/", 1)[1]


# ---- certificates and CRLs -----------------------------------------------------------------------------------


def load_certificates(pem, what):
    """All certificates of a PEM bundle; AWSError when there are none or one does not parse."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise AWSError(f"{what} is not a PEM certificate bundle ({exc})", "InvalidCertificate") from None
    return certs


def load_crl(data, what="crl"):
    """A CRL from PEM or DER bytes."""
    data = data.encode() if isinstance(data, str) else data
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise AWSError(f"{what} is neither a PEM nor a DER X.509 CRL ({exc})", "InvalidCrl") from None


def check_crl_issuer(crl, ca_certs, anchor):
    """AWSError unless ``crl`` is signed by one of ``ca_certs`` (the trust anchor's CA certificates)."""
    for ca in ca_certs:
        if ca.subject != crl.issuer:
            continue
        try:
            if crl.is_signature_valid(ca.public_key()):
                return ca
        except TypeError:
            continue
    subjects = "; ".join(ca.subject.rfc4514_string() for ca in ca_certs) or "none"
    raise AWSError(
        f"the CRL (issuer {crl.issuer.rfc4514_string()}) is not signed by the CA of trust anchor {anchor} "
        f"(CA certificates: {subjects}); import the CRL that this CA issued",
        "CrlNotSignedByTrustAnchor",
    )


def colon_hex(number):
    """A serial number as colon-separated lower-case hex bytes (the form openssl and AWS documentation show)."""
    text = format(number, "x")
    text = "0" * (len(text) % 2) + text
    return ":".join(text[i:i + 2] for i in range(0, len(text), 2))


def certificate_summaries(certs):
    """What identifies each certificate in a diff: subject, SHA-256 fingerprint and expiry."""
    return [
        {
            "subject": cert.subject.rfc4514_string(),
            "sha256": cert.fingerprint(hashes.SHA256()).hex(":"),
            "not_after": cert.not_valid_after_utc.isoformat(),
        }
        for cert in certs
    ]


# ---- IAM Roles Anywhere helpers shared by its three resource modules -----------------------------------------


def find_by_name(client, list_operation, result_key, name, what):
    """The one resource named ``name`` (or None); AWSError when several share the name (names are not unique)."""
    matches = [item for item in client.paginate(list_operation, result_key) if item.get("name") == name]
    if len(matches) > 1:
        raise AWSError(
            f"{len(matches)} {what}s are named {name!r}; this module manages resources by name: delete or rename "
            "the extra ones",
            "AmbiguousName",
        )
    return matches[0] if matches else None


def rolesanywhere_tags(client, arn):
    return tag_list_to_dict(client.list_tags_for_resource(resourceArn=arn).get("tags"))


def sync_rolesanywhere_tags(client, arn, current, desired):
    to_set, to_unset = compare_tags(current, desired)
    if to_set:
        client.tag_resource(resourceArn=arn, tags=tag_dict_to_list(to_set))
    if to_unset:
        client.untag_resource(resourceArn=arn, tagKeys=to_unset)


def set_enabled(client, kind, id_field, resource_id, enabled):
    """Enable/Disable<kind> (TrustAnchor, Profile, Crl) by id."""
    operation = f"{'enable' if enabled else 'disable'}_{kind}"
    getattr(client, operation)(**{id_field: resource_id})


# ---- subject activity (ListSubjects / GetSubject) -------------------------------------------------------------


def _iso_time(value):
    """botocore's timestamps (datetime) as the report's UTC text; None stays None."""
    if value is None or isinstance(value, str):
        return value
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _credential_serial(credential):
    """Lower-case hex serial, as the host state records it: from the certificate, else the decimal serialNumber."""
    if credential.get("x509CertificateData"):
        return format(x509.load_pem_x509_certificate(credential["x509CertificateData"].encode()).serial_number, "x")
    return format(int(credential["serialNumber"]), "x")


def list_subjects(client, credentials=True):
    """Roles Anywhere's subjects (one per certificate subject) with when each was last seen; with
    ``credentials`` also each certificate's last use (one GetSubject per subject)."""
    subjects = []
    for summary in client.paginate("list_subjects", "subjects"):
        subject = {
            "subject_arn": summary.get("subjectArn"),
            "subject_id": summary.get("subjectId"),
            "x509_subject": summary.get("x509Subject"),
            "enabled": summary.get("enabled"),
            "last_seen_at": _iso_time(summary.get("lastSeenAt")),
        }
        if credentials:
            detail = client.get_subject(subjectId=summary["subjectId"]).get("subject") or {}
            subject["credentials"] = [
                {"serial_number": _credential_serial(c), "issuer": c.get("issuer"), "seen_at": _iso_time(c.get("seenAt")),
                 "failed": c.get("failed"), "enabled": c.get("enabled")}
                for c in detail.get("credentials") or []
            ]
        subjects.append(subject)
    return subjects
