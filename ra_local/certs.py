"""Certificate rules of IAM Roles Anywhere: end-entity profile, path to a trust anchor, CRLs, session tags."""
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from ra_local.errors import AccessDeniedError, ValidationError

STRONG_HASHES = {"sha256", "sha384", "sha512"}
MAX_PATH_LENGTH = 5
UNTRUSTED = "Untrusted Signing Certificate"
# RDN short names that become session tags (x509Subject/<name>, x509Issuer/<name>, x509SAN/Name/<name>)
RDN_NAMES = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.COUNTRY_NAME: "C",
}


def parse_anchor_bundle(pem):
    """A trust anchor's CA certificates (one, or two during a rotation); ValidationException if unusable."""
    try:
        certs = x509.load_pem_x509_certificates(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as exc:
        raise ValidationError(f"x509CertificateData is not a PEM certificate: {exc}") from None
    if len(certs) > 2:
        raise ValidationError(f"x509CertificateData holds {len(certs)} certificates; a trust anchor takes at most 2")
    for cert in certs:
        problem = _ca_problem(cert)
        if problem:
            raise ValidationError(f"Trust anchor certificate {cert.subject.rfc4514_string()} is not usable as a CA: {problem}")
    return certs


def load_crl(data):
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise ValidationError(f"crlData is not a PEM or DER X.509 CRL: {exc}") from None


def _extension(cert, oid):
    try:
        return cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None


def _hash_name(cert):
    algorithm = cert.signature_hash_algorithm
    return algorithm.name if algorithm else "none"


def _ca_problem(cert):
    if cert.version != x509.Version.v3:
        return "not an X.509 v3 certificate"
    constraints = _extension(cert, ExtensionOID.BASIC_CONSTRAINTS)
    if constraints is None or not constraints.ca:
        return "basicConstraints CA:TRUE is missing"
    usage = _extension(cert, ExtensionOID.KEY_USAGE)
    if usage is not None and not usage.key_cert_sign:
        return "keyUsage lacks keyCertSign"
    if _hash_name(cert) not in STRONG_HASHES:
        return f"signed with {_hash_name(cert)}; SHA-256 or stronger is required"
    return None


def check_end_entity(cert, now):
    """The end-entity rules; AccessDeniedException naming the first rule the certificate breaks."""
    name = cert.subject.rfc4514_string()
    if cert.version != x509.Version.v3:
        raise AccessDeniedError(f"{UNTRUSTED}: certificate {name} is not X.509 v3")
    constraints = _extension(cert, ExtensionOID.BASIC_CONSTRAINTS)
    if constraints is None:
        raise AccessDeniedError(f"{UNTRUSTED}: certificate {name} has no basicConstraints extension (CA:FALSE required)")
    if constraints.ca:
        raise AccessDeniedError(
            f"{UNTRUSTED}: certificate {name} is a CA certificate (basicConstraints CA:TRUE); "
            "an end-entity certificate (CA:FALSE) is required"
        )
    usage = _extension(cert, ExtensionOID.KEY_USAGE)
    if usage is None or not usage.digital_signature:
        raise AccessDeniedError(f"{UNTRUSTED}: certificate {name} lacks keyUsage digitalSignature")
    if _hash_name(cert) not in STRONG_HASHES:
        raise AccessDeniedError(f"{UNTRUSTED}: certificate {name} is signed with {_hash_name(cert)}; SHA-256 or stronger is required")
    if not isinstance(cert.public_key(), (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise AccessDeniedError(f"{UNTRUSTED}: certificate {name} has neither an RSA nor an EC key")
    _check_validity(cert, now, "certificate")


def _check_validity(cert, now, role):
    name = cert.subject.rfc4514_string()
    if now < cert.not_valid_before_utc:
        raise AccessDeniedError(f"{UNTRUSTED}: {role} {name} is not valid before {cert.not_valid_before_utc.isoformat()}")
    if now > cert.not_valid_after_utc:
        raise AccessDeniedError(f"{UNTRUSTED}: {role} {name} expired at {cert.not_valid_after_utc.isoformat()}")


def _issued_by(child, parent):
    try:
        child.verify_directly_issued_by(parent)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def build_path(leaf, intermediates, anchors, now, anchor_arn):
    """leaf → any subset of the sent intermediates → an anchor CA certificate, each link verified."""

    def extend(path):
        current = path[-1]
        for anchor in anchors:
            if _issued_by(current, anchor):
                _check_validity(anchor, now, "trust anchor certificate")
                return path + [anchor]
        if len(path) >= MAX_PATH_LENGTH:
            return None
        for candidate in intermediates:
            if candidate in path or _ca_problem(candidate) or not _issued_by(current, candidate):
                continue
            if not candidate.not_valid_before_utc <= now <= candidate.not_valid_after_utc:
                continue
            found = extend(path + [candidate])
            if found:
                return found
        return None

    path = extend([leaf])
    if path is None:
        raise AccessDeniedError(
            f"{UNTRUSTED}: no valid chain from {leaf.subject.rfc4514_string()} (issuer "
            f"{leaf.issuer.rfc4514_string()}) through the sent X-Amz-X509-Chain to a CA certificate of trust anchor {anchor_arn}"
        )
    return path


def check_revocation(path, crls):
    """Each link of the path against the anchor's enabled CRLs that its issuer signed."""
    for child, parent in zip(path, path[1:]):
        for crl_name, crl in crls:
            if crl.issuer != parent.subject or not crl.is_signature_valid(parent.public_key()):
                continue
            if crl.get_revoked_certificate_by_serial_number(child.serial_number) is not None:
                raise AccessDeniedError(
                    f"{UNTRUSTED}: certificate serial {child.serial_number} ({child.subject.rfc4514_string()}) "
                    f"is revoked by CRL '{crl_name}'"
                )


def _rdn_values(name):
    values = {}
    for attribute in name:
        short = RDN_NAMES.get(attribute.oid)
        if short and short not in values:  # the first of repeated attributes, like a single-valued tag
            values[short] = attribute.value
    return values


def certificate_attributes(cert):
    """Every value a mapping rule may select, keyed '<certificateField>/<specifier>'."""
    attributes = {}
    for short, value in _rdn_values(cert.subject).items():
        attributes[f"x509Subject/{short}"] = value
    for short, value in _rdn_values(cert.issuer).items():
        attributes[f"x509Issuer/{short}"] = value
    san = _extension(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    if san is not None:
        dns = san.get_values_for_type(x509.DNSName)
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        names = san.get_values_for_type(x509.DirectoryName)
        if dns:
            attributes["x509SAN/DNS"] = dns[0]
        if uris:
            attributes["x509SAN/URI"] = uris[0]
        if names:
            for short, value in _rdn_values(names[0]).items():
                attributes[f"x509SAN/Name/{short}"] = value
    return attributes


def session_tags(cert, attribute_mappings):
    """Session tags the profile's attribute mappings select from the certificate."""
    attributes = certificate_attributes(cert)
    tags = {}
    for mapping in attribute_mappings:
        field = mapping["certificateField"]
        for rule in mapping["mappingRules"]:
            specifier = rule["specifier"]
            prefix = f"{field}/{specifier[:-1]}" if specifier.endswith("*") else None
            for key, value in attributes.items():
                if key == f"{field}/{specifier}" or (prefix and key.startswith(prefix) and key.count("/") == prefix.count("/")):
                    tags[key] = value
    return tags


def common_name(cert):
    return _rdn_values(cert.subject).get("CN")
