"""Run a local site in the foreground for hand-run molecule scenarios or playbooks:

    python -m tests.site --vars-file /tmp/site.json      # then: RA_SITE_VARS=/tmp/site.json molecule test

It needs the fleet's bridge (start any fleet host first). Ctrl-C or SIGTERM stops everything it started.
"""
import argparse
import json
import signal
import sys
import tempfile
from pathlib import Path

from tests.site import LocalSite


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vars-file", required=True, type=Path, help="where to write the enrol variables (JSON)")
    parser.add_argument("--workdir", type=Path, help="state directory (default: a new temporary one)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ra-site-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with LocalSite(workdir) as site:
        args.vars_file.write_text(json.dumps(site.enrol_vars(), indent=2) + "\n")
        args.vars_file.chmod(0o600)
        print(f"site ready: {site.ra.url} (Roles Anywhere), {site.gate.url} (STS/S3); vars in {args.vars_file}",
              flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
