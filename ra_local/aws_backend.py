"""The AWS side the endpoint needs (moto over HTTP): roles, Private CA certificates, credential minting.

Minting: AWS Roles Anywhere calls STS AssumeRole as its service principal after evaluating the role's trust
policy. moto checks an AssumeRole caller only against ``Principal.AWS`` ARNs (a Service-only trust policy
even makes it fail with HTTP 500), so ra_local evaluates the trust policy itself (trust_policy.py) and then
mints through STS AssumeRoleWithWebIdentity, signed with the endpoint's own IAM credentials (standard
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY environment). moto skips its trust check for that call but creates
the same kind of assumed-role session, whose permissions it enforces like any other.

AssumeRoleWithWebIdentity cannot carry session tags; they and the source identity travel in the unsigned
``X-Aws-Gate-Session-Context`` header, which aws_gate (an enforcing layer that may sit in front of moto, see
docs/aws-gate.md) reads and moto ignores.
"""
import json
import threading

import boto3
from botocore.auth import SigV4Auth
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ra_local.errors import AccessDeniedError, UnavailableError, ValidationError

WEB_IDENTITY_TOKEN = "ra-local-rolesanywhere-service"  # moto does not inspect it; AWS never sees it
SESSION_CONTEXT_HEADER = "X-Aws-Gate-Session-Context"


class AwsBackend:
    def __init__(self, endpoint, region):
        self.endpoint = endpoint
        self.region = region
        session = boto3.session.Session(region_name=region)
        config = Config(retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=32)
        self._credentials = session.get_credentials()
        self.iam = session.client("iam", endpoint_url=endpoint, config=config)
        self.sts = session.client("sts", endpoint_url=endpoint, config=config)
        self.pca = session.client("acm-pca", endpoint_url=endpoint, config=config)
        self.sts.meta.events.register("request-created.sts.AssumeRoleWithWebIdentity", self._sign)
        self._minting = threading.local()  # the session context of the call this thread is making

    def _sign(self, request, **_):
        # The operation is unsigned in AWS; an enforcing moto requires a signature on every call.
        if self._credentials is not None:
            SigV4Auth(self._credentials.get_frozen_credentials(), "sts", self.region).add_auth(request)
        request.headers[SESSION_CONTEXT_HEADER] = self._minting.context

    def get_role(self, role_arn):
        """The IAM role (RoleId, Arn, AssumeRolePolicyDocument, MaxSessionDuration) or None if absent."""
        name = role_arn.rsplit("/", 1)[-1]
        try:
            role = self.iam.get_role(RoleName=name)["Role"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchEntity":
                return None
            raise UnavailableError(f"Reading role {role_arn} from IAM failed: {exc}") from None
        except BotoCoreError as exc:
            raise UnavailableError(f"IAM at {self.endpoint} is unreachable: {exc}") from None
        return role if role["Arn"] == role_arn else None

    def pca_certificate(self, pca_arn):
        """The Private CA's certificate (PEM), as trust anchors of type AWS_ACM_PCA use it."""
        try:
            return self.pca.get_certificate_authority_certificate(CertificateAuthorityArn=pca_arn)["Certificate"]
        except ClientError as exc:
            error = exc.response["Error"]
            raise ValidationError(
                f"acmPcaArn {pca_arn}: the Private CA's certificate cannot be read ({error['Code']}: {error['Message']})"
            ) from None
        except BotoCoreError as exc:
            raise UnavailableError(f"ACM PCA at {self.endpoint} is unreachable: {exc}") from None

    def mint(self, role_arn, session_name, duration, session_policy=None, policy_arns=(), session_tags=None,
             source_identity=None):
        params = {
            "RoleArn": role_arn,
            "RoleSessionName": session_name,
            "WebIdentityToken": WEB_IDENTITY_TOKEN,
            "DurationSeconds": duration,
        }
        if session_policy:
            params["Policy"] = session_policy
        if policy_arns:
            params["PolicyArns"] = [{"arn": arn} for arn in policy_arns]
        context = {"tags": session_tags or {}}
        if source_identity:
            context["sourceIdentity"] = source_identity
        self._minting.context = json.dumps(context, separators=(",", ":"))
        try:
            return self.sts.assume_role_with_web_identity(**params)
        except ClientError as exc:
            error = exc.response["Error"]
            if exc.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 403):
                raise AccessDeniedError(f"STS refused to issue credentials for {role_arn}: {error['Code']}: {error['Message']}") from None
            raise UnavailableError(f"STS failed: {error['Code']}: {error['Message']}") from None
        except BotoCoreError as exc:
            raise UnavailableError(f"STS at {self.endpoint} is unreachable: {exc}") from None
