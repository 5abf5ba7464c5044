# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP gate in front of moto server.

Every request is forwarded to the upstream byte for byte, with its original Host header, so the
upstream's own SigV4 check still sees what the client signed. On the way:

- STS AssumeRole and AssumeRoleWithWebIdentity requests (from anyone) are remembered with their
  session policies (``Policy``, ``PolicyArns.member.N.arn``), session tags and source identity; a
  200 answer maps the returned AccessKeyId to that session. AssumeRoleWithWebIdentity has no Tags
  parameter, so a minting stand-in (ra_local) may send the Roles Anywhere session tags and source
  identity in the unsigned ``X-Aws-Gate-Session-Context`` header (JSON, see SESSION_CONTEXT_HEADER).
- Requests signed with such a session's key are authorised first, as AWS would: the role's
  identity policies (and permissions boundary) read from the upstream IAM, intersected with the
  session policies (aws_gate.policy). A denied request never reaches the upstream and gets AWS's
  403 AccessDenied answer (S3: XML <Error>; query APIs: <ErrorResponse>).
- Session credentials the gate did not see issued, and requests it cannot map to IAM actions,
  are denied (fail closed). Requests with other credentials (IAM user keys) or none pass through.
"""
from __future__ import annotations

import datetime
import http.client
import json
import logging
import secrets
import socket
import threading
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from aws_gate import operations
from aws_gate.iam_source import IamPolicySource, PolicySourceError, RolePolicies
from aws_gate.policy import NamedPolicy, PolicyError, Request, evaluate

log = logging.getLogger("aws_gate")

# Hop-by-hop headers (RFC 9110 §7.6.1) and Expect, which the gate answers itself.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
               "expect"}
_MAX_BUFFERED_BODY = 16 * 1024 * 1024  # query-protocol bodies are small; S3 bodies are streamed
_DRAIN_LIMIT = 1024 * 1024  # a denied body up to this size is read so the connection stays usable
_CHUNK = 64 * 1024
MINTING_ACTIONS = ("AssumeRole", "AssumeRoleWithWebIdentity")
# {"tags": {"x509Subject/CN": "host1", ...}, "sourceIdentity": "host1"}: what AWS Roles Anywhere would
# attach to the session, for minting calls whose STS API cannot carry it.
SESSION_CONTEXT_HEADER = "X-Aws-Gate-Session-Context"
_QUERY_NAMESPACES = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/", "iam": "https://iam.amazonaws.com/doc/2010-05-08/"}


@dataclass(frozen=True)
class Session:
    """What the gate learnt from one AssumeRole: enough to evaluate the session's requests."""

    access_key_id: str
    session_token: str
    role_arn: str
    assumed_role_arn: str
    inline_policy: str | None
    policy_arns: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)
    source_identity: str | None = None
    issued_at: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc))

    @property
    def has_session_policies(self) -> bool:
        return self.inline_policy is not None or bool(self.policy_arns)


class SessionTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def add(self, session: Session) -> None:
        with self._lock:
            self._sessions[session.access_key_id] = session

    def get(self, access_key_id: str) -> Session | None:
        with self._lock:
            return self._sessions.get(access_key_id)


@dataclass(frozen=True)
class Signature:
    access_key_id: str
    region: str
    service: str
    session_token: str | None
    auth_type: str  # s3:authType: REST-HEADER or REST-QUERY-STRING


def parse_signature(headers, query: dict[str, list[str]]) -> Signature | None:
    """The SigV4 credential scope of a request (Authorization header or presigned query)."""
    authorization = headers.get("Authorization", "")
    if authorization.startswith("AWS4-HMAC-SHA256 "):
        scope = authorization.partition("Credential=")[2].partition(",")[0].strip()
        token, auth_type = headers.get("X-Amz-Security-Token"), "REST-HEADER"
    elif "X-Amz-Credential" in query:
        scope = query["X-Amz-Credential"][0]
        token, auth_type = (query.get("X-Amz-Security-Token") or [None])[0], "REST-QUERY-STRING"
    else:
        return None
    parts = scope.split("/")
    if len(parts) != 5:
        return None
    return Signature(parts[0], parts[2], parts[3], token, auth_type)


class Denied(Exception):
    def __init__(self, code: str, message: str, status: int = 403):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class GateServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], upstream: str, policy_source: IamPolicySource):
        parsed = urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"--upstream must be http://HOST:PORT of the moto server, not {upstream!r}")
        super().__init__(address, GateHandler)
        self.upstream_host = parsed.hostname
        self.upstream_port = parsed.port or 80
        self.policy_source = policy_source
        self.sessions = SessionTable()


class GateHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: GateServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (BaseHTTPRequestHandler's name)
        log.debug("%s %s", self.client_address[0], format % args)

    def handle_expect_100(self) -> bool:
        return True  # answered after the authorisation, so a denied upload never sends its body

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    # --- one request ---------------------------------------------------------------------------

    def _handle(self) -> None:
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        signature = parse_signature(self.headers, query)
        service = self._service = signature.service if signature else ""
        body: bytes | None = None
        params = query
        learn = False
        try:
            if service and service != "s3":
                body = self._read_body()
                params = _query_params(query, body, self.headers.get("Content-Type", ""))
            learn = service == "sts" and (params.get("Action") or [""])[0] in MINTING_ACTIONS
            session = self._session_for(signature)
            if session is not None:
                self._authorise(session, signature, split.path, query, params)
            extra = self._session_context() if learn else {}
        except Denied as denied:
            log.info("DENY %s %s from %s: %s", self.command, self.path, self.client_address[0], denied.message)
            self._answer_error(service, denied, body_read=body is not None)
            return
        self._forward(body, learn_from=(params, extra) if learn else None)

    def _session_context(self) -> dict:
        text = self.headers.get(SESSION_CONTEXT_HEADER)
        if text is None:
            return {}
        try:
            context = json.loads(text)
            tags, source_identity = context.get("tags", {}), context.get("sourceIdentity")
            if not (isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())
                    and (source_identity is None or isinstance(source_identity, str))):
                raise ValueError
        except (ValueError, AttributeError):
            raise Denied("InvalidParameterValue", (
                f"{SESSION_CONTEXT_HEADER} must be JSON {{\"tags\": {{\"key\": \"value\"}}, "
                "\"sourceIdentity\": \"name\"}"), 400) from None
        return {"tags": tags, "sourceIdentity": source_identity}

    def _session_for(self, signature: Signature | None) -> Session | None:
        if signature is None:
            return None
        session = self.server.sessions.get(signature.access_key_id)
        if session is None:
            if signature.session_token and signature.access_key_id.startswith("ASIA"):
                raise Denied("AccessDenied", (
                    f"aws_gate: session credentials {signature.access_key_id} were not issued by an AssumeRole "
                    "that passed through this gate, so their session policies are unknown (fail closed). "
                    "Send STS AssumeRole (the Roles Anywhere endpoint's AWS endpoint) through the gate."))
            return None
        if signature.session_token != session.session_token:
            if signature.service == "s3":
                raise Denied("InvalidToken", "The provided token is malformed or otherwise invalid.", 400)
            raise Denied("InvalidClientTokenId", "The security token included in the request is invalid.")
        return session

    def _authorise(self, session: Session, signature: Signature, path: str, query, params) -> None:
        try:
            if signature.service == "s3":
                checks = operations.s3_checks(self.command, path, query, self.headers, signature.region,
                                              signature.auth_type)
            elif signature.service == "sts":
                checks = operations.sts_checks(params)
            else:
                raise operations.UnmappedOperation(f"service {signature.service!r} is not mapped")
        except operations.UnmappedOperation as exc:
            raise Denied("AccessDenied", (
                f"aws_gate cannot map this request to IAM actions ({exc}), so it cannot evaluate the session's "
                "policies and denies it (fail closed); see docs/aws-gate.md for the mapped operations")) from None
        if not checks:
            return
        try:
            role = self.server.policy_source.role(session.role_arn)
            session_policies = None
            if session.has_session_policies:
                session_policies = [self.server.policy_source.managed_policy(arn) for arn in session.policy_arns]
                if session.inline_policy is not None:
                    session_policies.append(NamedPolicy("session policy (inline)", session.inline_policy))
            context = self._global_context(session, signature, role)
            for check in checks:
                request = Request(check.action, check.resource, {**context, **check.context})
                result = evaluate(request, role.identity, session_policies, role.permissions_boundary)
                log.info("%s %s %s for %s from %s", "ALLOW" if result.allowed else "DENY", check.action,
                         check.resource, session.assumed_role_arn, self.client_address[0])
                if not result.allowed:
                    resource = f'"{check.resource}"' if signature.service == "s3" else check.resource
                    raise Denied("AccessDenied", (
                        f"User: {session.assumed_role_arn} is not authorized to perform: {check.action} "
                        f"on resource: {resource} {result.reason(check.action)}"))
        except (PolicySourceError, PolicyError) as exc:
            raise Denied("AccessDenied", f"aws_gate cannot evaluate the session's policies: {exc}") from None

    def _global_context(self, session: Session, signature: Signature, role: RolePolicies) -> dict[str, str]:
        now = datetime.datetime.now(datetime.timezone.utc)
        context = {
            "aws:SourceIp": self.client_address[0],
            "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "aws:EpochTime": str(int(now.timestamp())),
            "aws:SecureTransport": "false",  # the gate speaks plain HTTP
            "aws:RequestedRegion": signature.region,
            "aws:PrincipalArn": session.role_arn,
            "aws:PrincipalAccount": session.role_arn.split(":")[4],
            "aws:PrincipalType": "AssumedRole",
            "aws:userid": f"{role.role_id}:{session.assumed_role_arn.rsplit('/', 1)[-1]}",
            "aws:TokenIssueTime": session.issued_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "aws:ViaAWSService": "false",
        }
        # Session tags override role tags of the same key (session tags documentation).
        for key, value in {**role.tags, **session.tags}.items():
            context[f"aws:PrincipalTag/{key}"] = value
        if session.source_identity:
            context["aws:SourceIdentity"] = session.source_identity
        return context

    # --- bodies, forwarding, answers -----------------------------------------------------------

    def _read_body(self) -> bytes:
        """The whole body of a query-protocol request (its parameters may be in it)."""
        if self.headers.get("Expect", "").lower() == "100-continue":
            self._send_continue()
        data = bytearray()
        for chunk in self._body_chunks():
            data += chunk
            if len(data) > _MAX_BUFFERED_BODY:
                self.close_connection = True
                raise Denied("RequestEntityTooLarge",
                             f"aws_gate reads query-protocol bodies up to {_MAX_BUFFERED_BODY} bytes", 413)
        return bytes(data)

    def _send_continue(self) -> None:
        self.send_response_only(100)
        self.end_headers()
        self.wfile.flush()

    def _body_chunks(self) -> Iterator[bytes]:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers are not forwarded
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining > 0:
                chunk = self.rfile.read(min(_CHUNK, remaining))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk

    def _forward(self, body: bytes | None, learn_from: tuple[dict[str, list[str]], dict] | None) -> None:
        connection = http.client.HTTPConnection(self.server.upstream_host, self.server.upstream_port, timeout=300)
        try:
            try:
                connection.connect()
            except OSError as exc:
                upstream = f"{self.server.upstream_host}:{self.server.upstream_port}"
                log.error("cannot reach the upstream %s: %s", upstream, exc)
                self._answer_error(self._service, Denied("ServiceUnavailable", (
                    f"aws_gate cannot reach its upstream {upstream} ({exc}); is the moto server running?"), 503),
                    body_read=body is not None)
                return
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
            connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    connection.putheader(name, value)
            if body is not None and chunked:
                connection.putheader("Content-Length", str(len(body)))
            elif chunked:
                connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            if body is not None:
                connection.send(body)
            else:
                if self.headers.get("Expect", "").lower() == "100-continue":
                    self._send_continue()
                for chunk in self._body_chunks():
                    connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                if chunked:
                    connection.send(b"0\r\n\r\n")
            response = connection.getresponse()
            if learn_from is not None:
                payload = response.read()
                if response.status == 200:
                    self._learn(*learn_from, payload)
                self._relay(response, payload)
            else:
                self._relay(response, None)
        finally:
            connection.close()

    def _relay(self, response: http.client.HTTPResponse, payload: bytes | None) -> None:
        self.send_response_only(response.status, response.reason)
        has_length = False
        for name, value in response.getheaders():
            lowered = name.lower()
            if lowered in _HOP_BY_HOP:
                continue
            if lowered == "content-length":
                if payload is not None:
                    value = str(len(payload))
                has_length = True
            self.send_header(name, value)
        bodiless = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        if payload is not None and not has_length:
            self.send_header("Content-Length", str(len(payload)))
            has_length = True
        chunked = not bodiless and not has_length
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if bodiless:
            return
        if payload is not None:
            self.wfile.write(payload)
            return
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _learn(self, params: dict[str, list[str]], extra: dict, payload: bytes) -> None:
        try:
            root = ElementTree.fromstring(payload)
        except ElementTree.ParseError:
            log.warning("%s answer is not XML; its session is not tracked", params["Action"][0])
            return
        values = {element.tag.rsplit("}", 1)[-1]: (element.text or "") for element in root.iter()}
        if not values.get("AccessKeyId"):
            return
        inline = (params.get("Policy") or [None])[0]
        session = Session(
            access_key_id=values["AccessKeyId"], session_token=values.get("SessionToken", ""),
            role_arn=params["RoleArn"][0], assumed_role_arn=values.get("Arn", ""),
            inline_policy=inline, policy_arns=tuple(operations.session_policy_arns(params)),
            tags={**operations.session_tags(params), **extra.get("tags", {})},
            source_identity=extra.get("sourceIdentity") or (params.get("SourceIdentity") or [None])[0],
        )
        self.server.sessions.add(session)
        log.info("learnt session %s of %s (session policies: %s%s)", session.access_key_id, session.role_arn,
                 ", ".join(session.policy_arns) or "no managed", ", inline" if inline is not None else "")

    def _answer_error(self, service: str, denied: Denied, body_read: bool) -> None:
        request_id = secrets.token_hex(8).upper()
        if service == "s3" or not service:
            payload = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{denied.code}</Code>'
                       f"<Message>{escape(denied.message)}</Message><RequestId>{request_id}</RequestId>"
                       f"<HostId>{secrets.token_urlsafe(24)}</HostId></Error>").encode()
            content_type = "application/xml"
        else:
            namespace = _QUERY_NAMESPACES.get(service)
            xmlns = f' xmlns="{namespace}"' if namespace else ""
            payload = (f"<ErrorResponse{xmlns}><Error><Type>Sender</Type><Code>{denied.code}</Code>"
                       f"<Message>{escape(denied.message)}</Message></Error>"
                       f"<RequestId>{request_id}</RequestId></ErrorResponse>").encode()
            content_type = "text/xml"
        if not body_read:
            self._discard_body()
        self.send_response_only(denied.status)
        self.send_header("Content-Type", content_type)
        self.send_header("x-amz-request-id", request_id)
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _discard_body(self) -> None:
        """Read a small unread body so the connection can be reused; close it after a large one."""
        expects_continue = self.headers.get("Expect", "").lower() == "100-continue"
        length = self.headers.get("Content-Length")
        chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        if expects_continue or chunked or (length and int(length) > _DRAIN_LIMIT):
            self.close_connection = True
            return
        if length:
            self.rfile.read(int(length))


def _query_params(query: dict[str, list[str]], body: bytes, content_type: str) -> dict[str, list[str]]:
    params = {name: list(values) for name, values in query.items()}
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        for name, values in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items():
            params.setdefault(name, []).extend(values)
    return params


def serve(host: str, port: int, upstream: str, iam_endpoint: str | None = None) -> GateServer:
    """Bind the gate (port 0 picks a free port); the caller runs ``serve_forever()``."""
    return GateServer((host, port), upstream, IamPolicySource(iam_endpoint or upstream))
