"""CreateSession: verify the request like AWS (protocol §4.9), then mint credentials for the role."""
import base64
import json
import logging
import re
from urllib.parse import parse_qs

from cryptography.hazmat.primitives.serialization import Encoding

from ra_local import certs, signature, trust_policy
from ra_local.errors import AccessDeniedError, NotFoundError, ServiceError, ValidationError

MIN_DURATION = 900
MAX_DURATION = 43200
ARN_FIELDS = ("profileArn", "roleArn", "trustAnchorArn")
ROLE_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
log = logging.getLogger("ra_local")


class CreateSession:
    def __init__(self, control, aws, clock, clock_skew, strict_algorithm=False):
        self.control = control
        self.aws = aws
        self.clock = clock
        self.clock_skew = clock_skew
        self.strict_algorithm = strict_algorithm

    def __call__(self, path, raw_query, headers, body):
        now = self.clock()
        verified = signature.verify("POST", path, raw_query, headers, body, self.control.region, now, self.clock_skew,
                                    self.strict_algorithm)
        leaf = verified.leaf
        request = self._request_fields(raw_query, body)
        anchor, profile, crls = self._resources(request)
        try:
            certs.check_end_entity(leaf, now)
            anchor_certs = self._anchor_certificates(anchor)
            path_to_anchor = certs.build_path(leaf, verified.chain, anchor_certs, now, anchor["trustAnchorArn"])
            certs.check_revocation(path_to_anchor, crls)
            response = self._issue(request, anchor, profile, leaf)
        except ServiceError as exc:
            self._record(leaf, failed=True, request=request)
            log.info("CreateSession refused for serial %s: %s", leaf.serial_number, exc.message)
            raise
        subject = self._record(leaf, failed=False, request=request)
        response["subjectArn"] = subject["subjectArn"]
        return response

    @staticmethod
    def _request_fields(raw_query, body):
        document = {}
        if body.strip():
            try:
                document = json.loads(body)
            except ValueError as exc:
                raise ValidationError(f"Request body is not valid JSON: {exc}") from None
            if not isinstance(document, dict):
                raise ValidationError("Request body must be a JSON object")
        query = parse_qs(raw_query, keep_blank_values=True)
        fields = dict(document)
        for name in ARN_FIELDS:
            if name in query:  # ARNs in the query (the Go helper) take precedence over the body
                fields[name] = query[name][0]
            if not isinstance(fields.get(name), str) or not fields[name]:
                raise ValidationError(f"{name} is required (in the query string or the JSON body)")
        duration = fields.get("durationSeconds")
        if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int)):
            raise ValidationError(f"durationSeconds must be an integer; got {duration!r}")
        name = fields.get("roleSessionName")
        if name is not None and not (isinstance(name, str) and ROLE_SESSION_NAME.fullmatch(name)):
            raise ValidationError(f"roleSessionName {name!r} must be 2-64 characters of letters, digits and +=,.@_-")
        properties = fields.get("instanceProperties")
        if properties is not None and not (
            isinstance(properties, dict) and len(properties) <= 50
            and all(isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 200 and 0 < len(v) <= 200
                    for k, v in properties.items())
        ):
            raise ValidationError("instanceProperties must map at most 50 names to strings (each 1-200 characters)")
        return fields

    def _resources(self, request):
        control = self.control
        with control.store.reading() as data:
            try:
                anchor = dict(control.find(data, "trustAnchors", request["trustAnchorArn"]))
            except NotFoundError:
                raise AccessDeniedError(
                    f"Trust anchor {request['trustAnchorArn']} does not exist in account {control.account}, "
                    f"region {control.region}"
                ) from None
            try:
                profile = dict(control.find(data, "profiles", request["profileArn"]))
            except NotFoundError:
                raise AccessDeniedError(
                    f"Profile {request['profileArn']} does not exist in account {control.account}, region {control.region}"
                ) from None
            crls = [
                (crl["name"], certs.load_crl(base64.b64decode(crl["crlData"])))
                for crl in data["crls"].values()
                if crl["enabled"] and crl["trustAnchorArn"] == anchor["trustAnchorArn"]
            ]
        if not anchor["enabled"]:
            raise AccessDeniedError(f"Trust anchor {anchor['trustAnchorArn']} is disabled")
        if not profile["enabled"]:
            raise AccessDeniedError(f"Profile {profile['profileArn']} is disabled")
        return anchor, profile, crls

    def _anchor_certificates(self, anchor):
        source = anchor["source"]
        if source["sourceType"] == "AWS_ACM_PCA":
            pem = self.aws.pca_certificate(source["sourceData"]["acmPcaArn"])
        else:
            pem = source["sourceData"]["x509CertificateData"]
        return certs.parse_anchor_bundle(pem)

    def _issue(self, request, anchor, profile, leaf):
        role_arn = request["roleArn"]
        if role_arn not in profile["roleArns"]:
            raise AccessDeniedError(f"Role {role_arn} is not listed in profile {profile['profileArn']} (roleArns)")
        duration = request.get("durationSeconds")
        ceiling = profile["durationSeconds"]
        if duration is None:
            duration = ceiling
        if not MIN_DURATION <= duration <= min(MAX_DURATION, ceiling):
            raise ValidationError(
                f"durationSeconds {duration} is out of range: it must be between {MIN_DURATION} and the profile's "
                f"durationSeconds {ceiling}"
            )
        session_name = format(leaf.serial_number, "x")
        if request.get("roleSessionName") is not None:
            if not profile.get("acceptRoleSessionName"):
                raise AccessDeniedError("Not authorized to set roleSessionName. (profile acceptRoleSessionName is false)")
            session_name = request["roleSessionName"]
        if profile.get("requireInstanceProperties") and not request.get("instanceProperties"):
            raise AccessDeniedError(f"Profile {profile['profileArn']} requires instanceProperties, and the request has none")

        role = self.aws.get_role(role_arn)
        if role is None:
            raise AccessDeniedError(f"Role {role_arn} does not exist in IAM, so it cannot be assumed")
        if duration > role.get("MaxSessionDuration", 3600):
            raise ValidationError(f"durationSeconds {duration} exceeds the role's MaxSessionDuration {role['MaxSessionDuration']}")
        tags = certs.session_tags(leaf, profile["attributeMappings"])
        context = {f"aws:PrincipalTag/{k}": v for k, v in tags.items()}
        context.update({f"aws:RequestTag/{k}": v for k, v in tags.items()})
        context.update({"aws:SourceArn": anchor["trustAnchorArn"], "aws:SourceAccount": self.control.account})
        refusal = trust_policy.evaluate(role["AssumeRolePolicyDocument"], context)
        if refusal:
            raise AccessDeniedError(f"Role {role_arn} cannot be assumed: {refusal}")

        minted = self.aws.mint(
            role_arn, session_name, duration, profile.get("sessionPolicy"), profile.get("managedPolicyArns") or (),
            session_tags=tags, source_identity=certs.common_name(leaf),
        )
        credentials = minted["Credentials"]
        return {
            "credentialSet": [
                {
                    "assumedRoleUser": {
                        "arn": minted["AssumedRoleUser"]["Arn"],
                        "assumedRoleId": f"{role['RoleId']}:{session_name}",
                    },
                    "credentials": {
                        "accessKeyId": credentials["AccessKeyId"],
                        "secretAccessKey": credentials["SecretAccessKey"],
                        "sessionToken": credentials["SessionToken"],
                        "expiration": credentials["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                    },
                    "packedPolicySize": minted.get("PackedPolicySize", 0),
                    "roleArn": role_arn,
                    "sourceIdentity": certs.common_name(leaf) or "",
                }
            ]
        }

    def _record(self, leaf, failed, request):
        credential = {
            "serialNumber": str(leaf.serial_number),
            "issuer": leaf.issuer.rfc4514_string(),
            "x509CertificateData": leaf.public_bytes(Encoding.PEM).decode(),
            "failed": failed,
        }
        return self.control.record_subject(leaf.subject.rfc4514_string(), credential, request.get("instanceProperties"))

