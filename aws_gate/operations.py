# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Map an HTTP request to the IAM actions, resources and service condition keys AWS authorises.

Sources: the Service Authorization Reference pages "Actions, resources, and condition keys for
Amazon S3" and "... for AWS Security Token Service", and the S3 API reference's "Permissions"
section of each operation (HeadBucket needs s3:ListBucket, HeadObject s3:GetObject, CopyObject
s3:GetObject on the source and s3:PutObject on the target, multipart uploads s3:PutObject).

Anything not in these tables raises UnmappedOperation: the gate then denies (fails closed) rather
than let a session do something whose policy check it cannot perform.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import unquote

# The partition of an ARN follows the region of the request (ARN format documentation).
_PARTITION_PREFIXES = (("cn-", "aws-cn"), ("us-gov-", "aws-us-gov"), ("us-iso-", "aws-iso"), ("us-isob-", "aws-iso-b"))


def partition_of(region: str) -> str:
    for prefix, partition in _PARTITION_PREFIXES:
        if region.startswith(prefix):
            return partition
    return "aws"


@dataclass(frozen=True)
class Check:
    """One authorisation AWS performs for the request: action on resource, plus service keys."""

    action: str
    resource: str
    context: Mapping[str, str | list[str]] = field(default_factory=dict)


class UnmappedOperation(Exception):
    """The gate does not know which IAM actions this request needs; the message says what it saw."""


# --- S3 (REST, path-style addressing) ------------------------------------------------------------

# Query parameters that select no operation of their own (list paging, versions, presigning, ...).
_S3_PLAIN_PARAMS = {
    "list-type", "prefix", "delimiter", "max-keys", "marker", "continuation-token", "start-after",
    "fetch-owner", "encoding-type", "versionid", "partnumber", "uploadid", "key-marker",
    "version-id-marker", "upload-id-marker", "max-uploads", "max-parts", "part-number-marker", "x-id",
    "optional-object-attributes",
}

_S3_BUCKET_SUBRESOURCES: dict[str, dict[str, str]] = {
    "acl": {"GET": "GetBucketAcl", "PUT": "PutBucketAcl"},
    "policy": {"GET": "GetBucketPolicy", "PUT": "PutBucketPolicy", "DELETE": "DeleteBucketPolicy"},
    "policystatus": {"GET": "GetBucketPolicyStatus"},
    "tagging": {"GET": "GetBucketTagging", "PUT": "PutBucketTagging", "DELETE": "PutBucketTagging"},
    "versioning": {"GET": "GetBucketVersioning", "PUT": "PutBucketVersioning"},
    "location": {"GET": "GetBucketLocation"},
    "versions": {"GET": "ListBucketVersions"},
    "uploads": {"GET": "ListBucketMultipartUploads"},
    "cors": {"GET": "GetBucketCORS", "PUT": "PutBucketCORS", "DELETE": "PutBucketCORS"},
    "encryption": {"GET": "GetEncryptionConfiguration", "PUT": "PutEncryptionConfiguration",
                   "DELETE": "PutEncryptionConfiguration"},
    "publicaccessblock": {"GET": "GetBucketPublicAccessBlock", "PUT": "PutBucketPublicAccessBlock",
                          "DELETE": "PutBucketPublicAccessBlock"},
    "ownershipcontrols": {"GET": "GetBucketOwnershipControls", "PUT": "PutBucketOwnershipControls",
                          "DELETE": "PutBucketOwnershipControls"},
    "lifecycle": {"GET": "GetLifecycleConfiguration", "PUT": "PutLifecycleConfiguration",
                  "DELETE": "PutLifecycleConfiguration"},
    "logging": {"GET": "GetBucketLogging", "PUT": "PutBucketLogging"},
    "notification": {"GET": "GetBucketNotification", "PUT": "PutBucketNotification"},
    "website": {"GET": "GetBucketWebsite", "PUT": "PutBucketWebsite", "DELETE": "DeleteBucketWebsite"},
    "object-lock": {"GET": "GetBucketObjectLockConfiguration", "PUT": "PutBucketObjectLockConfiguration"},
}

# (action, action when the request names a versionId)
_S3_OBJECT_SUBRESOURCES: dict[str, dict[str, tuple[str, str]]] = {
    "acl": {"GET": ("GetObjectAcl", "GetObjectVersionAcl"), "PUT": ("PutObjectAcl", "PutObjectVersionAcl")},
    "tagging": {"GET": ("GetObjectTagging", "GetObjectVersionTagging"),
                "PUT": ("PutObjectTagging", "PutObjectVersionTagging"),
                "DELETE": ("DeleteObjectTagging", "DeleteObjectVersionTagging")},
    "uploads": {"POST": ("PutObject", "PutObject")},  # CreateMultipartUpload
}


def s3_checks(method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str],
              region: str, auth_type: str) -> list[Check]:
    """Checks for one path-style S3 request (``/``, ``/bucket``, ``/bucket/key``)."""
    partition = partition_of(region)
    bucket, _, raw_key = path.lstrip("/").partition("/")
    bucket = unquote(bucket)
    key = unquote(raw_key)
    params = {name.lower(): values for name, values in query.items() if not name.lower().startswith("x-amz-")}
    subresources = [name for name in params if name not in _S3_PLAIN_PARAMS]
    described = f"{method} {path}" + (f"?{'&'.join(sorted(params))}" if params else "")
    if len(subresources) > 1:
        raise UnmappedOperation(f"S3 request {described} names several sub-resources {subresources}")
    subresource = subresources[0] if subresources else None
    version_id = _first(params.get("versionid"))
    lowered = {name.lower(): value for name, value in headers.items()}
    context: dict[str, str | list[str]] = {
        "s3:authType": auth_type, "s3:signatureversion": "AWS4-HMAC-SHA256",
    }
    for header in ("x-amz-acl", "x-amz-server-side-encryption", "x-amz-content-sha256", "x-amz-copy-source",
                   "x-amz-storage-class", "x-amz-metadata-directive"):
        if header in lowered:
            context[f"s3:{header}"] = lowered[header]
    if version_id is not None:
        context["s3:VersionId"] = version_id

    def check(action: str, resource: str, **extra: str) -> Check:
        return Check(f"s3:{action}", resource, {**context, **extra})

    if not bucket:
        if method == "GET" and not subresource:
            # ListAllMyBuckets has no resource type; "arn:aws:s3:::*" is what "*" and the common
            # "arn:aws:s3:::*" Resource both match.
            return [check("ListAllMyBuckets", f"arn:{partition}:s3:::*")]
        raise UnmappedOperation(f"S3 request {described} (service level) is not mapped")

    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    if not key:
        if subresource is None:
            if method in ("GET", "HEAD"):
                list_keys = {f"s3:{name}": params[name][0] for name in ("prefix", "delimiter", "max-keys")
                             if params.get(name)}
                return [check("ListBucket", bucket_arn, **list_keys)]
            if method == "PUT":
                return [check("CreateBucket", bucket_arn)]
            if method == "DELETE":
                return [check("DeleteBucket", bucket_arn)]
        action = _S3_BUCKET_SUBRESOURCES.get(subresource or "", {}).get(method)
        if action is None:
            raise UnmappedOperation(f"S3 bucket request {described} is not mapped")
        return [check(action, bucket_arn)]

    object_arn = f"{bucket_arn}/{key}"
    versioned = "Version" if version_id is not None else ""
    if "uploadid" in params and subresource is None:
        action = {"GET": "ListMultipartUploadParts", "PUT": "PutObject", "POST": "PutObject",
                  "DELETE": "AbortMultipartUpload"}.get(method)
        if action is None:
            raise UnmappedOperation(f"S3 multipart request {described} is not mapped")
        return [check(action, object_arn)] + _copy_source_checks(lowered, partition, context)
    if subresource is None:
        if method in ("GET", "HEAD"):
            return [check(f"GetObject{versioned}", object_arn)]
        if method == "PUT":
            return [check("PutObject", object_arn)] + _copy_source_checks(lowered, partition, context)
        if method == "DELETE":
            return [check(f"DeleteObject{versioned}", object_arn)]
        raise UnmappedOperation(f"S3 object request {described} is not mapped")
    actions = _S3_OBJECT_SUBRESOURCES.get(subresource, {}).get(method)
    if actions is None:
        raise UnmappedOperation(f"S3 object request {described} is not mapped")
    return [check(actions[1] if versioned else actions[0], object_arn)]


def _copy_source_checks(headers: Mapping[str, str], partition: str, context: Mapping) -> list[Check]:
    """CopyObject / UploadPartCopy also read the source object (x-amz-copy-source: bucket/key[?versionId=])."""
    source = headers.get("x-amz-copy-source")
    if not source:
        return []
    source_path, _, source_query = unquote(source).lstrip("/").partition("?")
    action = "s3:GetObjectVersion" if source_query.startswith("versionId=") else "s3:GetObject"
    return [Check(action, f"arn:{partition}:s3:::{source_path}", dict(context))]


# --- STS (query protocol) ------------------------------------------------------------------------

def sts_checks(params: Mapping[str, list[str]]) -> list[Check]:
    """Checks for an STS request; an empty list means AWS authorises nothing (GetCallerIdentity)."""
    action = _first(params.get("Action"))
    if action == "GetCallerIdentity":
        return []  # "No permissions are required to perform this operation" (STS API reference)
    if action == "AssumeRole":
        role_arn = _first(params.get("RoleArn")) or ""
        tags = session_tags(params)
        context: dict[str, str | list[str]] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
        if tags:
            context["aws:TagKeys"] = list(tags)
        source_identity = _first(params.get("SourceIdentity"))
        if source_identity:
            context["sts:SourceIdentity"] = source_identity
        checks = [Check("sts:AssumeRole", role_arn, context)]
        if tags:
            checks.append(Check("sts:TagSession", role_arn, context))
        if source_identity:
            checks.append(Check("sts:SetSourceIdentity", role_arn, context))
        return checks
    raise UnmappedOperation(f"STS action {action!r} is not mapped")


def session_tags(params: Mapping[str, list[str]]) -> dict[str, str]:
    """Tags.member.N.Key / .Value of an AssumeRole request, in order."""
    tags: dict[str, str] = {}
    index = 1
    while f"Tags.member.{index}.Key" in params:
        tags[params[f"Tags.member.{index}.Key"][0]] = _first(params.get(f"Tags.member.{index}.Value")) or ""
        index += 1
    return tags


def session_policy_arns(params: Mapping[str, list[str]]) -> list[str]:
    """PolicyArns.member.N.arn of an AssumeRole request, in order."""
    arns: list[str] = []
    index = 1
    while f"PolicyArns.member.{index}.arn" in params:
        arns.append(params[f"PolicyArns.member.{index}.arn"][0])
        index += 1
    return arns


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None
