"""python -m ra_local --host 127.0.0.1 --port PORT --aws-endpoint http://127.0.0.1:MOTO_PORT [...]"""
import argparse
import logging
import signal
import ssl
import sys
import threading
from datetime import datetime, timezone

from ra_local.aws_backend import AwsBackend
from ra_local.control import ControlPlane
from ra_local.create_session import CreateSession
from ra_local.model import ServiceModel
from ra_local.server import App, Server
from ra_local.store import StateError, Store


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m ra_local", description="Local IAM Roles Anywhere endpoint")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback or a test bridge address)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (printed)")
    parser.add_argument("--aws-endpoint", required=True, help="moto server URL for IAM, STS and ACM PCA")
    parser.add_argument("--tls-cert", help="PEM certificate (chain) to serve HTTPS")
    parser.add_argument("--tls-key", help="PEM private key for --tls-cert")
    parser.add_argument("--state", help="JSON file holding resources across restarts")
    parser.add_argument("--clock-skew", type=int, default=300, help="allowed X-Amz-Date skew in seconds (default 300)")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--account", default="123456789012")
    parser.add_argument(
        "--fixed-time",
        help="verify CreateSession as if now were this instant (YYYYMMDDTHHMMSSZ); for replaying captured requests",
    )
    parser.add_argument(
        "--strict-algorithm", action="store_true",
        help="refuse AWS4-X509-*-SHA384/SHA512 names (iam-rolesanywhere-session sends them for SHA-384/512-signed certificates)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if args.host in ("", "0.0.0.0", "::"):
        parser.error("--host must be a specific address (127.0.0.1 or the test bridge address), not a wildcard")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.fixed_time:
        try:
            args.fixed_time = datetime.strptime(args.fixed_time, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            parser.error(f"--fixed-time {args.fixed_time!r} is not YYYYMMDDTHHMMSSZ")
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s ra_local %(levelname)s %(message)s")
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    try:
        store = Store(args.state)
    except StateError as exc:
        print(f"ra_local: {exc}", file=sys.stderr)
        return 2
    aws = AwsBackend(args.aws_endpoint, args.region)
    control = ControlPlane(store, args.region, args.account, aws)
    fixed = args.fixed_time
    clock = (lambda: fixed) if fixed else (lambda: datetime.now(timezone.utc))
    app = App(ServiceModel(), control, CreateSession(control, aws, clock, args.clock_skew, args.strict_algorithm))

    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    server = Server((args.host, args.port), app, tls)

    def stop(signum, _frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    scheme = "https" if tls else "http"
    print(f"ra_local listening on {scheme}://{host}:{port} region={args.region} account={args.account}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
