"""HTTP(S) front end: de-chunked bodies, REST-JSON routing by the service model, AWS-style errors."""
import json
import logging
import socket
import ssl
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from ra_local.errors import AccessDeniedError, ServiceError, ValidationError

MAX_BODY = 1 << 20
log = logging.getLogger("ra_local")


class BadRequest(Exception):
    pass


def read_chunked(stream):
    """The body of a ``Transfer-Encoding: chunked`` request (RFC 9112 §7.1), trailers discarded."""
    body = bytearray()
    while True:
        line = stream.readline(1024)
        if not line.endswith(b"\n"):
            raise BadRequest("truncated chunk size line")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest(f"bad chunk size {line!r}") from None
        if size == 0:
            break
        if len(body) + size > MAX_BODY:
            raise BadRequest("body too large")
        chunk = stream.read(size)
        if len(chunk) != size or stream.read(2) != b"\r\n":
            raise BadRequest("truncated chunk")
        body += chunk
    while stream.readline(1024) not in (b"\r\n", b"\n", b""):
        pass
    return bytes(body)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ra_local"
    sys_version = ""

    def setup(self):
        super().setup()
        # headers and body leave in separate writes: without this, Nagle + delayed ACK add ~40 ms per response
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()  # in the handler thread, so a slow client cannot stall accept()

    def log_message(self, format, *args):  # noqa: A002 (BaseHTTPRequestHandler's signature)
        log.debug("%s %s", self.address_string(), format % args)

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return read_chunked(self.rfile)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        if not length.isdigit() or int(length) > MAX_BODY:
            raise BadRequest(f"bad Content-Length {length!r}")
        return self.rfile.read(int(length))

    def _send(self, status, document, error_type=None):
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Amzn-RequestId", str(uuid.uuid4()))
        if error_type:
            self.send_header("X-Amzn-ErrorType", error_type)
        self.end_headers()
        self.wfile.write(payload)

    def _handle(self):
        app = self.server.app
        path, _, raw_query = self.path.partition("?")
        error_type = None
        try:
            try:
                body = self._read_body()
            except BadRequest as exc:
                self.close_connection = True
                raise ValidationError(f"Malformed request body: {exc}") from None
            if self.command == "POST" and path == "/sessions":
                status, document = 201, app.create_session(path, raw_query, list(self.headers.items()), body)
            else:
                status, document = app.control_request(self.command, path, raw_query, self.headers, body)
        except ServiceError as exc:
            status, document, error_type = exc.status, {"message": exc.message}, exc.error_type
        except Exception as exc:  # a defect in the endpoint: answer 500 and keep serving
            log.exception("internal error on %s %s", self.command, path)
            status, document, error_type = 500, {"message": f"Internal error: {exc}"}, "InternalServerException"
        try:
            self._send(status, document, error_type)
        except ConnectionError:
            self.close_connection = True
            log.info("%s went away before the %s answer to %s %s", self.address_string(), status, self.command, path)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class App:
    """Routes control-plane requests through the service model to ControlPlane methods."""

    def __init__(self, model, control, create_session):
        self.model = model
        self.control = control
        self.create_session = create_session

    def control_request(self, method, path, raw_query, headers, body):
        operation, path_params = self.model.route(method, path)
        if operation is None:
            raise UnknownOperation(f"No IAM Roles Anywhere operation is {method} {path}")
        self._check_authorization(headers.get("Authorization", ""))
        params = operation.parse(path_params, parse_qs(raw_query, keep_blank_values=True), body)
        operation.validate(params)
        return operation.status, getattr(self.control, operation.name)(params)

    def _check_authorization(self, authorization):
        # Secret keys cannot be read back from IAM, so the HMAC itself is not checked; the scope is.
        scope = f"/{self.control.region}/rolesanywhere/aws4_request"
        if not authorization.startswith("AWS4-HMAC-SHA256 Credential=") or scope not in authorization:
            raise AccessDeniedError(
                f"Missing or malformed SigV4 Authorization: control-plane requests must be signed for "
                f"service rolesanywhere in region {self.control.region}"
            )


class UnknownOperation(ServiceError):
    status = 404
    error_type = "UnknownOperationException"


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError):  # the client closed or reset the connection
            log.debug("connection from %s ended abruptly", client_address[0])
        else:
            super().handle_error(request, client_address)

    def __init__(self, address, app, tls_context=None):
        super().__init__(address, Handler)
        self.app = app
        if tls_context is not None:
            self.socket = tls_context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
