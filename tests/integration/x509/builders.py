"""Purpose-built certificates, CSRs and keys for the X.509 tests (good ones and deliberately bad ones)."""
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.ansible import COLLECTIONS

NOW = datetime.datetime.now(datetime.timezone.utc)


def name(**attrs):
    oids = {"C": NameOID.COUNTRY_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
            "CN": NameOID.COMMON_NAME}
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in attrs.items()])


def ec_key(curve=ec.SECP256R1):
    return ec.generate_private_key(curve())


def write_key(path, key):
    Path(path).write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    os.chmod(path, 0o600)
    return str(path)


def make_csr(key, subject, ca=None, sans=None, digest=hashes.SHA256):
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    return builder.sign(key, digest())


def pem(obj):
    return obj.public_bytes(serialization.Encoding.PEM).decode()


def tamper_csr(csr_pem):
    """Change one character of the CN inside the signed part: the CSR still parses, its signature no longer verifies."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    der = csr.public_bytes(serialization.Encoding.DER)
    cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value.encode()
    index = der.index(cn)
    tampered = der[:index] + bytes([cn[0] ^ 0x01]) + der[index + 1:]
    return x509.load_der_x509_csr(tampered).public_bytes(serialization.Encoding.PEM).decode()


def openssl_csr(directory, key_spec, digest, subject="/O=Example/OU=fleet/CN=legacy"):
    """A CSR made by openssl (for what cryptography refuses to create: SHA-1, RSA-1024)."""
    key = Path(directory) / "legacy.key"
    csr = Path(directory) / "legacy.csr"
    subprocess.run(["openssl", "req", "-new", "-newkey", key_spec, "-nodes", "-keyout", str(key), f"-{digest}",
                    "-subj", subject, "-out", str(csr)], check=True, capture_output=True, timeout=60)
    return csr.read_text()


def leaf(issuer_cert, issuer_key, *, key=None, ca=False, basic_constraints=True, digital_signature=True,
         not_before=None, not_after=None, eku=True, subject=None):
    """A client certificate from a cryptography CA key, with individual rules broken on request."""
    key = key or ec_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject or name(O="Example", OU="fleet", CN="leaf"))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - datetime.timedelta(days=1))
        .not_valid_after(not_after or NOW + datetime.timedelta(days=30))
        .add_extension(x509.KeyUsage(digital_signature, False, not digital_signature, False, False, False, False,
                                     False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if basic_constraints:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA384() if isinstance(issuer_key, ec.EllipticCurvePrivateKey)
                        and issuer_key.curve.name == "secp384r1" else hashes.SHA256())


def openssl_leaf(directory, key_spec="ec:P-256", digest="sha256", version3=True):
    """A self-signed client-profile certificate made by openssl: SHA-1, RSA-1024 and v1 certificates."""
    directory = Path(directory)
    if key_spec.startswith("ec:"):
        key_arg = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:" + key_spec[3:]]
    else:
        key_arg = ["-newkey", key_spec]
    key, csr, cert = directory / "o.key", directory / "o.csr", directory / "o.pem"
    subprocess.run(["openssl", "req", "-new", *key_arg, "-nodes", "-keyout", str(key), "-subj", "/O=Example/CN=o",
                    "-out", str(csr)], check=True, capture_output=True, timeout=60)
    cmd = ["openssl", "x509", "-req", "-in", str(csr), "-signkey", str(key), f"-{digest}", "-days", "30",
           "-out", str(cert)]
    if version3:
        ext = directory / "ext.cnf"
        ext.write_text("[leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                       "extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
        cmd += ["-extfile", str(ext), "-extensions", "leaf"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return cert


def make_token_keypair(token, label, key_type, curve=None, size=None, key_id=None):
    """Generate a key pair on ``token`` in a fresh process (the PIN travels on stdin); returns the public key PEM."""
    code = (
        "import json, sys\n"
        "from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11 as p\n"
        "a = json.load(sys.stdin)\n"
        "spec = p.TokenSpec(a['module_path'], a['token_label'], pin=a['pin'], env=a['env'])\n"
        "with p.open_token_session(spec, rw=True) as s:\n"
        "    kp = p.generate_keypair(s, a['label'], a['key_type'], curve=a['curve'], size=a['size'],\n"
        "                            key_id=p.parse_key_id(a['key_id']))\n"
        "    print(p.public_key_pem(p.public_key_of(kp)))\n"
    )
    args = dict(module_path=token.module_path, token_label=token.token_label, pin=token.pin, env=token.env,
                label=label, key_type=key_type, curve=curve, size=size, key_id=key_id)
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(args), capture_output=True, text=True,
                          env={**os.environ, **token.env, "PYTHONPATH": str(COLLECTIONS)}, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"key generation on the token failed: {proc.stderr[-2000:]}")
    return proc.stdout
