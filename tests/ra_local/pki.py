"""Test certificates built with cryptography directly: a CA and leaves that break one rule at a time.

cryptography refuses to sign with SHA-1, so the SHA-1 leaf comes from the openssl CLI.
"""
import subprocess
import tempfile
from pathlib import Path
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def new_key(kind="ec"):
    return rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())


def name(cn, ou=None, o="Local Test"):
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o)]
    if ou:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attributes)


def _usage(digital_signature=False, cert_sign=False):
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
                         encipher_only=False, decipher_only=False)


class CA:
    def __init__(self, cn="ra_local test CA", issuer=None, key_kind="ec"):
        self.key = new_key(key_kind)
        self.name = name(cn)
        now = datetime.now(timezone.utc)
        signer = issuer or self
        builder = (x509.CertificateBuilder().subject_name(self.name)
                   .issuer_name(issuer.name if issuer else self.name).public_key(self.key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(_usage(digital_signature=True, cert_sign=True), critical=True))
        self.cert = builder.sign(signer.key, hashes.SHA256())

    @property
    def pem(self):
        return pem(self.cert)

    def issue(self, cn="host1.example.test", ou="Fleet", key_kind="ec", serial=None, ca=False,
              digital_signature=True, basic_constraints=True, key_usage=True, hash_algorithm=None,
              not_before=None, not_after=None, dns=None):
        """(certificate, private key) for a leaf; each keyword can break one end-entity rule."""
        key = new_key(key_kind)
        now = datetime.now(timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(name(cn, ou)).issuer_name(self.name)
                   .public_key(key.public_key()).serial_number(serial or x509.random_serial_number())
                   .not_valid_before(not_before or now - timedelta(hours=1))
                   .not_valid_after(not_after or now + timedelta(days=7)))
        if basic_constraints:
            builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        if key_usage:
            builder = builder.add_extension(_usage(digital_signature=digital_signature), critical=True)
        if dns:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
        return builder.sign(self.key, hash_algorithm or hashes.SHA256()), key

    def issue_sha1(self, cn="sha1.example.test"):
        """(certificate, private key) of an otherwise valid leaf signed with ecdsa-with-SHA1 / sha1WithRSA."""
        key = new_key("ec")
        csr = (x509.CertificateSigningRequestBuilder().subject_name(name(cn, "Fleet"))
               .sign(key, hashes.SHA256()))
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            (tmp / "ca.pem").write_text(self.pem)
            (tmp / "ca.key").write_text(key_pem(self.key))
            (tmp / "leaf.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
            (tmp / "ext").write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n")
            subprocess.run(["openssl", "x509", "-req", "-in", str(tmp / "leaf.csr"), "-CA", str(tmp / "ca.pem"),
                            "-CAkey", str(tmp / "ca.key"), "-sha1", "-days", "2", "-set_serial",
                            str(x509.random_serial_number()), "-extfile", str(tmp / "ext"), "-out", str(tmp / "leaf.pem")],
                           check=True, capture_output=True)
            return x509.load_pem_x509_certificate((tmp / "leaf.pem").read_bytes()), key

    def crl(self, revoked_serials):
        now = datetime.now(timezone.utc)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.name)
                   .last_update(now - timedelta(minutes=1)).next_update(now + timedelta(days=1)))
        for serial in revoked_serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now - timedelta(minutes=1)).build())
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
