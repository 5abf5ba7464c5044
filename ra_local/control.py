"""Control-plane operations: trust anchors, profiles, CRLs, subjects, tags, notification settings."""
import base64
import json
import uuid
from datetime import datetime, timezone

from ra_local.certs import load_crl, parse_anchor_bundle
from ra_local.errors import NotFoundError, TooManyTagsError, ValidationError

MAX_TAGS = 50
MAX_INSTANCE_PROPERTIES = 10  # most recent instanceProperties kept per subject
MAX_BUNDLE_CHARS = 8000
DEFAULT_PAGE_SIZE = 50
SERVICE_PRINCIPAL = "rolesanywhere.amazonaws.com"
DEFAULT_ATTRIBUTE_MAPPINGS = (
    ("x509Subject", ("*",)),
    ("x509Issuer", ("*",)),
    ("x509SAN", ("DNS", "URI", "Name/*")),
)
NOTIFICATION_EVENTS = ("CA_CERTIFICATE_EXPIRY", "END_ENTITY_CERTIFICATE_EXPIRY")
DEFAULT_NOTIFICATION_THRESHOLD = 45

# kind key in the store → ARN resource type
ARN_TYPES = {"trustAnchors": "trust-anchor", "profiles": "profile", "crls": "crl", "subjects": "subject"}
ID_FIELDS = {"trustAnchors": "trustAnchorId", "profiles": "profileId", "crls": "crlId", "subjects": "subjectId"}
ARN_FIELDS = {"trustAnchors": "trustAnchorArn", "profiles": "profileArn", "crls": "crlArn", "subjects": "subjectArn"}
LABELS = {"trustAnchors": "Trust anchor", "profiles": "Profile", "crls": "CRL", "subjects": "Subject"}


def timestamp(moment=None):
    return (moment or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ControlPlane:
    def __init__(self, store, region, account, aws):
        self.store = store
        self.region = region
        self.account = account
        self.aws = aws

    # -- identifiers -------------------------------------------------------------------------
    def arn(self, kind, resource_id):
        return f"arn:aws:rolesanywhere:{self.region}:{self.account}:{ARN_TYPES[kind]}/{resource_id}"

    def find(self, data, kind, identifier):
        """A record by UUID, resource ARN or alias ARN; ResourceNotFoundException otherwise."""
        records = data[kind]
        alias_prefix = f"arn:aws:rolesanywhere:{self.region}:{self.account}:alias/{ARN_TYPES[kind]}/"
        if identifier.startswith(alias_prefix):
            alias = identifier[len(alias_prefix):]
            for record in records.values():
                if record.get("aliasName") == alias:
                    return record
        else:
            resource_id = identifier
            if identifier.startswith("arn:"):
                prefix = self.arn(kind, "")
                resource_id = identifier[len(prefix):] if identifier.startswith(prefix) else None
            if resource_id in records:
                return records[resource_id]
        raise NotFoundError(f"{LABELS[kind]} not found: {identifier}")

    def _new(self, data, kind, params, fields):
        resource_id = str(uuid.uuid4())
        now = timestamp()
        record = {ID_FIELDS[kind]: resource_id, ARN_FIELDS[kind]: self.arn(kind, resource_id)}
        record.update(fields)
        record.update(createdAt=now, updatedAt=now)
        self._set_alias(kind, record, params.get("aliasName"))
        tags = params.get("tags") or []
        if len(tags) > MAX_TAGS:
            raise TooManyTagsError(f"A resource can have at most {MAX_TAGS} tags; {len(tags)} given")
        data["tags"][record[ARN_FIELDS[kind]]] = {tag["key"]: tag["value"] for tag in tags}
        data[kind][resource_id] = record
        return record

    def _set_alias(self, kind, record, alias):
        if alias is None:
            return
        if record.get("aliasName") and record["aliasName"] != alias:
            record["previousAliasName"] = record["aliasName"]
        record["aliasName"] = alias
        record["aliasArn"] = f"arn:aws:rolesanywhere:{self.region}:{self.account}:alias/{ARN_TYPES[kind]}/{alias}"

    def _delete(self, kind, identifier):
        with self.store.writing() as data:
            record = self.find(data, kind, identifier)
            del data[kind][record[ID_FIELDS[kind]]]
            data["tags"].pop(record[ARN_FIELDS[kind]], None)
            return record

    def _set_enabled(self, kind, identifier, enabled):
        with self.store.writing() as data:
            record = self.find(data, kind, identifier)
            record["enabled"] = enabled
            record["updatedAt"] = timestamp()
            return record

    def _list(self, kind, params, summary=None):
        size = params.get("pageSize") or DEFAULT_PAGE_SIZE
        if not 1 <= size <= DEFAULT_PAGE_SIZE:
            raise ValidationError(f"pageSize must be between 1 and {DEFAULT_PAGE_SIZE}; got {size}")
        start = 0
        if params.get("nextToken"):
            try:
                start = int(base64.urlsafe_b64decode(params["nextToken"].encode()).decode())
            except ValueError:
                raise ValidationError("nextToken is not a token this endpoint issued") from None
        with self.store.reading() as data:
            records = sorted(data[kind].values(), key=lambda r: (r["createdAt"], r[ID_FIELDS[kind]]))
        page = records[start:start + size]
        result = {"items": [summary(r) if summary else r for r in page]}
        if start + size < len(records):
            result["nextToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return result

    @staticmethod
    def _paged(key, listing):
        out = {key: listing["items"]}
        if "nextToken" in listing:
            out["nextToken"] = listing["nextToken"]
        return out

    # -- trust anchors -----------------------------------------------------------------------
    def _check_source(self, source):
        kind = source.get("sourceType")
        data = source.get("sourceData") or {}
        if kind == "CERTIFICATE_BUNDLE":
            bundle = data.get("x509CertificateData")
            if not bundle:
                raise ValidationError("sourceData.x509CertificateData is required for sourceType CERTIFICATE_BUNDLE")
            if len(bundle) > MAX_BUNDLE_CHARS:
                raise ValidationError(f"x509CertificateData is {len(bundle)} characters; at most {MAX_BUNDLE_CHARS} are allowed")
            parse_anchor_bundle(bundle)
        elif kind == "AWS_ACM_PCA":
            if not data.get("acmPcaArn"):
                raise ValidationError("sourceData.acmPcaArn is required for sourceType AWS_ACM_PCA")
            parse_anchor_bundle(self.aws.pca_certificate(data["acmPcaArn"]))
        else:
            raise ValidationError(f"sourceType {kind} is not supported; use CERTIFICATE_BUNDLE or AWS_ACM_PCA")
        return {"sourceType": kind, "sourceData": dict(data)}

    def _notifications(self, settings):
        by_event = {
            event: {
                "enabled": True,
                "event": event,
                "threshold": DEFAULT_NOTIFICATION_THRESHOLD,
                "channel": "ALL",
                "configuredBy": SERVICE_PRINCIPAL,
            }
            for event in NOTIFICATION_EVENTS
        }
        for setting in settings or []:
            current = by_event[setting["event"]]
            current.update(
                enabled=setting["enabled"],
                threshold=setting.get("threshold", current["threshold"]),
                channel=setting.get("channel", "ALL"),
                configuredBy=f"arn:aws:iam::{self.account}:root",
            )
        return list(by_event.values())

    def CreateTrustAnchor(self, p):
        source = self._check_source(p["source"])
        with self.store.writing() as data:
            fields = {
                "name": p["name"],
                "source": source,
                "enabled": p.get("enabled", False),
                "notificationSettings": self._notifications(p.get("notificationSettings")),
            }
            if "crlDpRevocationEnabled" in p:
                fields["crlDpRevocationEnabled"] = p["crlDpRevocationEnabled"]
            return {"trustAnchor": self._new(data, "trustAnchors", p, fields)}

    def GetTrustAnchor(self, p):
        with self.store.reading() as data:
            return {"trustAnchor": self.find(data, "trustAnchors", p["trustAnchorId"])}

    def UpdateTrustAnchor(self, p):
        source = self._check_source(p["source"]) if p.get("source") else None
        with self.store.writing() as data:
            record = self.find(data, "trustAnchors", p["trustAnchorId"])
            if "name" in p:
                record["name"] = p["name"]
            if source:
                record["source"] = source
            if "crlDpRevocationEnabled" in p:
                record["crlDpRevocationEnabled"] = p["crlDpRevocationEnabled"]
            self._set_alias("trustAnchors", record, p.get("aliasName"))
            record["updatedAt"] = timestamp()
            return {"trustAnchor": record}

    def DeleteTrustAnchor(self, p):
        return {"trustAnchor": self._delete("trustAnchors", p["trustAnchorId"])}

    def EnableTrustAnchor(self, p):
        return {"trustAnchor": self._set_enabled("trustAnchors", p["trustAnchorId"], True)}

    def DisableTrustAnchor(self, p):
        return {"trustAnchor": self._set_enabled("trustAnchors", p["trustAnchorId"], False)}

    def ListTrustAnchors(self, p):
        return self._paged("trustAnchors", self._list("trustAnchors", p))

    def PutNotificationSettings(self, p):
        with self.store.writing() as data:
            record = self.find(data, "trustAnchors", p["trustAnchorId"])
            current = {s["event"]: s for s in record["notificationSettings"]}
            for setting in self._notifications(p["notificationSettings"]):
                if any(s["event"] == setting["event"] for s in p["notificationSettings"]):
                    current[setting["event"]] = setting
            record["notificationSettings"] = [current[event] for event in NOTIFICATION_EVENTS]
            record["updatedAt"] = timestamp()
            return {"trustAnchor": record}

    def ResetNotificationSettings(self, p):
        with self.store.writing() as data:
            record = self.find(data, "trustAnchors", p["trustAnchorId"])
            defaults = {s["event"]: s for s in self._notifications(None)}
            reset = {key["event"] for key in p["notificationSettingKeys"]}
            record["notificationSettings"] = [
                defaults[s["event"]] if s["event"] in reset else s for s in record["notificationSettings"]
            ]
            record["updatedAt"] = timestamp()
            return {"trustAnchor": record}

    # -- profiles ----------------------------------------------------------------------------
    @staticmethod
    def _check_session_policy(policy):
        if policy is None:
            return
        try:
            document = json.loads(policy)
        except ValueError as exc:
            raise ValidationError(f"sessionPolicy is not valid JSON: {exc}") from None
        if not isinstance(document, dict) or "Statement" not in document:
            raise ValidationError("sessionPolicy must be an IAM policy document with a Statement")

    def CreateProfile(self, p):
        self._check_session_policy(p.get("sessionPolicy"))
        with self.store.writing() as data:
            fields = {
                "name": p["name"],
                "roleArns": p["roleArns"],
                "managedPolicyArns": p.get("managedPolicyArns", []),
                "requireInstanceProperties": p.get("requireInstanceProperties", False),
                "durationSeconds": p.get("durationSeconds", 3600),
                "acceptRoleSessionName": p.get("acceptRoleSessionName", False),
                "enabled": p.get("enabled", False),
                "createdBy": f"arn:aws:iam::{self.account}:root",
                "attributeMappings": [
                    {"certificateField": field, "mappingRules": [{"specifier": s} for s in specifiers]}
                    for field, specifiers in DEFAULT_ATTRIBUTE_MAPPINGS
                ],
            }
            for optional in ("sessionPolicy", "tipConfiguration"):
                if optional in p:
                    fields[optional] = p[optional]
            return {"profile": self._new(data, "profiles", p, fields)}

    def GetProfile(self, p):
        with self.store.reading() as data:
            return {"profile": self.find(data, "profiles", p["profileId"])}

    def UpdateProfile(self, p):
        self._check_session_policy(p.get("sessionPolicy"))
        with self.store.writing() as data:
            record = self.find(data, "profiles", p["profileId"])
            for field in ("name", "sessionPolicy", "roleArns", "managedPolicyArns", "durationSeconds",
                          "acceptRoleSessionName", "tipConfiguration"):
                if field in p:
                    record[field] = p[field]
            self._set_alias("profiles", record, p.get("aliasName"))
            record["updatedAt"] = timestamp()
            return {"profile": record}

    def DeleteProfile(self, p):
        return {"profile": self._delete("profiles", p["profileId"])}

    def EnableProfile(self, p):
        return {"profile": self._set_enabled("profiles", p["profileId"], True)}

    def DisableProfile(self, p):
        return {"profile": self._set_enabled("profiles", p["profileId"], False)}

    def ListProfiles(self, p):
        return self._paged("profiles", self._list("profiles", p))

    def PutAttributeMapping(self, p):
        with self.store.writing() as data:
            record = self.find(data, "profiles", p["profileId"])
            mappings = [m for m in record["attributeMappings"] if m["certificateField"] != p["certificateField"]]
            mappings.append({"certificateField": p["certificateField"], "mappingRules": p["mappingRules"]})
            record["attributeMappings"] = mappings
            record["updatedAt"] = timestamp()
            return {"profile": record}

    def DeleteAttributeMapping(self, p):
        with self.store.writing() as data:
            record = self.find(data, "profiles", p["profileId"])
            removed = set(p.get("specifiers") or [])
            mappings = []
            for mapping in record["attributeMappings"]:
                if mapping["certificateField"] == p["certificateField"]:
                    if not removed:
                        continue
                    mapping = dict(mapping, mappingRules=[r for r in mapping["mappingRules"] if r["specifier"] not in removed])
                mappings.append(mapping)
            record["attributeMappings"] = mappings
            record["updatedAt"] = timestamp()
            return {"profile": record}

    # -- CRLs --------------------------------------------------------------------------------
    def ImportCrl(self, p):
        load_crl(base64.b64decode(p["crlData"]))
        with self.store.writing() as data:
            try:
                anchor = self.find(data, "trustAnchors", p["trustAnchorArn"])
            except NotFoundError:
                raise ValidationError(f"trustAnchorArn does not name an existing trust anchor: {p['trustAnchorArn']}") from None
            fields = {
                "name": p["name"],
                "enabled": p.get("enabled", False),
                "crlData": p["crlData"],
                "trustAnchorArn": anchor["trustAnchorArn"],
            }
            return {"crl": self._new(data, "crls", p, fields)}

    def GetCrl(self, p):
        with self.store.reading() as data:
            return {"crl": self.find(data, "crls", p["crlId"])}

    def UpdateCrl(self, p):
        if "crlData" in p:
            load_crl(base64.b64decode(p["crlData"]))
        with self.store.writing() as data:
            record = self.find(data, "crls", p["crlId"])
            for field in ("name", "crlData"):
                if field in p:
                    record[field] = p[field]
            self._set_alias("crls", record, p.get("aliasName"))
            record["updatedAt"] = timestamp()
            return {"crl": record}

    def DeleteCrl(self, p):
        return {"crl": self._delete("crls", p["crlId"])}

    def EnableCrl(self, p):
        return {"crl": self._set_enabled("crls", p["crlId"], True)}

    def DisableCrl(self, p):
        return {"crl": self._set_enabled("crls", p["crlId"], False)}

    def ListCrls(self, p):
        return self._paged("crls", self._list("crls", p))

    # -- subjects ----------------------------------------------------------------------------
    SUBJECT_SUMMARY_FIELDS = ("subjectArn", "subjectId", "enabled", "x509Subject", "lastSeenAt", "createdAt", "updatedAt")

    def ListSubjects(self, p):
        def summary(record):
            return {k: record[k] for k in self.SUBJECT_SUMMARY_FIELDS if k in record}

        return self._paged("subjects", self._list("subjects", p, summary))

    def GetSubject(self, p):
        with self.store.reading() as data:
            return {"subject": self.find(data, "subjects", p["subjectId"])}

    def record_subject(self, x509_subject, credential, instance_properties=None):
        """Subject activity: one subject per certificate subject, one credential entry per certificate."""
        now = timestamp()
        with self.store.writing() as data:
            subject = next((s for s in data["subjects"].values() if s["x509Subject"] == x509_subject), None)
            if subject is None:
                subject_id = str(uuid.uuid4())
                subject = {
                    "subjectId": subject_id,
                    "subjectArn": self.arn("subjects", subject_id),
                    "enabled": True,
                    "x509Subject": x509_subject,
                    "createdAt": now,
                    "credentials": [],
                    "instanceProperties": [],
                }
                data["subjects"][subject_id] = subject
            subject["lastSeenAt"] = subject["updatedAt"] = now
            credential = dict(credential, seenAt=now, enabled=True)
            subject["credentials"] = [
                c for c in subject["credentials"]
                if (c["serialNumber"], c["issuer"]) != (credential["serialNumber"], credential["issuer"])
            ] + [credential]
            if instance_properties:
                subject["instanceProperties"] = subject["instanceProperties"][-(MAX_INSTANCE_PROPERTIES - 1):] + [
                    {"seenAt": now, "properties": instance_properties, "failed": credential["failed"]}
                ]
            return subject

    # -- tags --------------------------------------------------------------------------------
    def _tagged(self, data, arn):
        if arn not in data["tags"]:
            raise NotFoundError(f"No resource with ARN {arn}")
        return data["tags"][arn]

    def TagResource(self, p):
        with self.store.writing() as data:
            tags = self._tagged(data, p["resourceArn"])
            merged = dict(tags, **{t["key"]: t["value"] for t in p["tags"]})
            if len(merged) > MAX_TAGS:
                raise TooManyTagsError(f"A resource can have at most {MAX_TAGS} tags; this change would give it {len(merged)}")
            tags.update(merged)
            return {}

    def UntagResource(self, p):
        with self.store.writing() as data:
            tags = self._tagged(data, p["resourceArn"])
            for key in p["tagKeys"]:
                tags.pop(key, None)
            return {}

    def ListTagsForResource(self, p):
        with self.store.reading() as data:
            tags = self._tagged(data, p["resourceArn"])
            return {"tags": [{"key": k, "value": v} for k, v in tags.items()]}
