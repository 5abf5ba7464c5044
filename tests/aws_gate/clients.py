"""Clients for the gate's tests: boto3, the real aws CLI, and raw SigV4 requests from a chosen source address."""
import hashlib
import http.client
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import boto3
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


def session_keys(credentials):
    """STS ``Credentials`` or a CreateSession ``credentials`` entry as (key id, secret, token)."""
    if "AccessKeyId" in credentials:
        return credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials.get("SessionToken")
    return credentials["accessKeyId"], credentials["secretAccessKey"], credentials.get("sessionToken")


def client(service, endpoint, credentials):
    key_id, secret, token = session_keys(credentials)
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id=key_id,
                        aws_secret_access_key=secret, aws_session_token=token)


def aws_cli(endpoint, credentials, *args, home):
    """Run the aws CLI of the venv against ``endpoint`` with only these credentials in its environment."""
    key_id, secret, token = session_keys(credentials)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret,
           "AWS_SESSION_TOKEN": token, "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": os.devnull,
           "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}
    return subprocess.run([str(REPO / ".venv/bin/aws"), "--endpoint-url", endpoint, *args],
                          env=env, capture_output=True, text=True, timeout=60)


def signed_request(endpoint, credentials, service, method, path, body=b"", source_address="127.0.0.1", headers=None):
    """Send one SigV4-signed request from ``source_address`` (a bound client socket); (status, body text)."""
    url = f"{endpoint}{path}"
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    signer = S3SigV4Auth if service == "s3" else SigV4Auth
    signer(Credentials(*session_keys(credentials)), service, REGION).add_auth(request)
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30, source_address=(source_address, 0))
    try:
        connection.request(method, path, body=body, headers=dict(request.headers.items()))
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()
