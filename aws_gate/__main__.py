# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python -m aws_gate --host H --port P --upstream http://127.0.0.1:MOTO_PORT``

Prints ``aws_gate listening on http://H:PORT`` once it accepts connections (with ``--port 0`` that
line tells the chosen port) and serves until SIGTERM or SIGINT.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys

from aws_gate.gate import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aws_gate",
        description="An HTTP layer in front of moto server that authorises Roles Anywhere session credentials as "
                    "AWS does (identity policies ∩ session policies, Resource/NotResource, conditions).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind: 127.0.0.1, or the test bridge address (never 0.0.0.0)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--upstream", required=True, help="the moto server, http://127.0.0.1:PORT")
    parser.add_argument("--iam-endpoint", help="where to read roles and policies (default: --upstream)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    if args.host in ("0.0.0.0", "::", ""):
        parser.error("--host must be a specific address (127.0.0.1 or the test bridge address), not a wildcard")
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s aws_gate %(levelname)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)  # its credential lookups are noise here
    try:
        server = serve(args.host, args.port, args.upstream, args.iam_endpoint)
    except (OSError, ValueError) as exc:
        print(f"aws_gate: cannot start: {exc}", file=sys.stderr)
        return 2

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    host, port = server.server_address[:2]
    print(f"aws_gate listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
