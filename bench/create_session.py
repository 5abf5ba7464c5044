#!/usr/bin/env python
"""CreateSession throughput and latency of ra_local, with EC P-256 and RSA-2048 client keys.

Starts an IAM-enforcing moto server and ra_local (tests/support/aws.py), provisions a trust anchor, role and
profile per key type, pre-signs the requests (the client's signing time is not counted), then measures:
- sequential requests on one keep-alive connection: requests/s, median and p95 latency;
- concurrent requests from --threads connections: requests/s;
- a refused request (one-byte body change: signature checked, nothing minted) for the cost of verification alone;
- the baseline measured in the same run: one direct moto STS call (GetCallerIdentity as the admin user), since
  each CreateSession makes two moto calls (IAM GetRole, STS AssumeRoleWithWebIdentity).

With ``--burn N`` every measurement is repeated while N busy-loop processes compete for the CPUs, so that one run
shows what load alone does to the figures. The load average is printed at the start and the end.

    .venv/bin/python bench/create_session.py [--requests 200] [--threads 4] [--burn 2]
"""
import argparse
import contextlib
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.ra_local.client import signed_request  # noqa: E402
from tests.ra_local.pki import CA  # noqa: E402
from tests.support.aws import provision, start_moto, start_ra_local  # noqa: E402


def send_all(endpoint, requests):
    """Send pre-signed requests on one connection; per-request latencies (s) and the statuses seen."""
    connection = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=30)
    latencies, statuses = [], set()
    for url, headers, body in requests:
        started = time.perf_counter()
        connection.request("POST", "/sessions", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        statuses.add(response.status)
    connection.close()
    return latencies, statuses


def concurrent_rate(endpoint, requests, threads):
    shares = [requests[i::threads] for i in range(threads)]
    results = [None] * threads

    def worker(index):
        results[index] = send_all(endpoint, shares[index])

    started = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    statuses = set().union(*(r[1] for r in results))
    return len(requests) / elapsed, statuses


def describe(latencies):
    ordered = sorted(latencies)
    return (len(latencies) / sum(latencies), statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.95) - 1] * 1000)


@contextlib.contextmanager
def busy_loops(count):
    """``count`` processes spinning on the CPU while the block runs (stopped by their PIDs afterwards)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def load_average():
    return " ".join(f"{load:.1f}" for load in os.getloadavg())


def measure(endpoint, key_kind, requests, threads, base_median, label):
    """Print the sequential, concurrent and refused rows for pre-signed ``requests`` (1 warm-up + 2 x n)."""
    n = (len(requests) - 1) // 2
    warm, sequential, parallel = requests[:1], requests[1:n + 1], requests[n + 1:]
    send_all(endpoint, warm)
    latencies, statuses = send_all(endpoint, sequential)
    assert statuses == {201}, statuses
    rate, median, p95 = describe(latencies)
    print(f"{key_kind:<10}{label + 'sequential, 1 connection':<34}{rate:>8.1f}{median:>11.1f}{p95:>9.1f}{median / base_median:>12.1f}")
    rate, statuses = concurrent_rate(endpoint, parallel, threads)
    assert statuses == {201}, statuses
    print(f"{key_kind:<10}{label + f'concurrent, {threads} connections':<34}{rate:>8.1f}")
    tampered = [(url, headers, body.replace(b"900", b"901")) for url, headers, body in sequential]
    latencies, statuses = send_all(endpoint, tampered)
    assert statuses == {403}, statuses
    rate, median, p95 = describe(latencies)
    print(f"{key_kind:<10}{label + 'refused (bad signature)':<34}{rate:>8.1f}{median:>11.1f}{p95:>9.1f}{median / base_median:>12.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per measurement")
    parser.add_argument("--threads", type=int, default=4, help="connections for the concurrent measurement")
    parser.add_argument("--burn", type=int, default=0, help="repeat each measurement with this many busy loops")
    args = parser.parse_args()
    print(f"load average {load_average()} at the start")

    with tempfile.TemporaryDirectory(prefix="bench-ra-") as workdir:
        moto = start_moto(log_path=Path(workdir) / "moto.log")
        endpoint = None
        try:
            endpoint = start_ra_local(moto, workdir)
            sts = moto.client("sts")
            sts.get_caller_identity()
            baseline = []
            for _ in range(args.requests):
                started = time.perf_counter()
                sts.get_caller_identity()
                baseline.append(time.perf_counter() - started)
            base_median = statistics.median(baseline) * 1000
            print(f"baseline  moto STS GetCallerIdentity (boto3): median {base_median:.1f} ms over {args.requests} calls")
            print(f"{'key':<10}{'case':<34}{'req/s':>8}{'median ms':>11}{'p95 ms':>9}{'x baseline':>12}")
            for key_kind in ("ec", "rsa"):
                ca = CA(f"bench CA {key_kind}", key_kind=key_kind)
                arns = provision(endpoint, ca.pem)
                cert, key = ca.issue(key_kind=key_kind, cn=f"bench-{key_kind}.example.test")
                for burn in sorted({0, args.burn}):
                    requests = [signed_request(endpoint, cert, key, arns, duration=900) for _ in range(args.requests * 2 + 1)]
                    with busy_loops(burn):
                        measure(endpoint, key_kind, requests, args.threads, base_median,
                                f"{burn} busy loops, " if args.burn else "")
        finally:
            if endpoint:
                endpoint.stop()
            moto.stop()
    print(f"load average {load_average()} at the end")


if __name__ == "__main__":
    main()
