"""Session tags derived from the certificate through the profile's attribute mappings."""
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ra_local.certs import session_tags
from ra_local.control import DEFAULT_ATTRIBUTE_MAPPINGS
from tests.ra_local.client import create_session
from tests.ra_local.pki import CA, name, new_key
from tests.support.aws import provision

DEFAULT = [{"certificateField": f, "mappingRules": [{"specifier": s} for s in specs]} for f, specs in DEFAULT_ATTRIBUTE_MAPPINGS]


def san_leaf(ca):
    key = new_key()
    san = x509.SubjectAlternativeName([
        x509.DNSName("web1.example.test"), x509.DNSName("web1-alt.example.test"),
        x509.UniformResourceIdentifier("spiffe://example.test/web1"),
        x509.DirectoryName(name("directory-cn", ou="Directory OU")),
    ])
    return (x509.CertificateBuilder().subject_name(name("web1", ou="Fleet")).issuer_name(ca.name)
            .public_key(key.public_key()).serial_number(42).not_valid_before(ca.cert.not_valid_before_utc)
            .not_valid_after(ca.cert.not_valid_after_utc).add_extension(san, critical=False)
            .sign(ca.key, hashes.SHA256()))


def test_default_mappings_give_subject_issuer_and_first_sans():
    ca = CA("tag issuer")
    assert session_tags(san_leaf(ca), DEFAULT) == {
        "x509Subject/CN": "web1", "x509Subject/OU": "Fleet", "x509Subject/O": "Local Test",
        "x509Issuer/CN": "tag issuer", "x509Issuer/O": "Local Test",
        "x509SAN/DNS": "web1.example.test", "x509SAN/URI": "spiffe://example.test/web1",
        "x509SAN/Name/CN": "directory-cn", "x509SAN/Name/OU": "Directory OU", "x509SAN/Name/O": "Local Test",
    }


def test_narrowed_mappings_select_only_their_specifiers():
    mappings = [{"certificateField": "x509Subject", "mappingRules": [{"specifier": "CN"}]},
                {"certificateField": "x509SAN", "mappingRules": [{"specifier": "Name/OU"}]}]
    assert session_tags(san_leaf(CA()), mappings) == {"x509Subject/CN": "web1", "x509SAN/Name/OU": "Directory OU"}


def test_a_dropped_specifier_fails_equality_and_satisfies_negation(ra_endpoint):
    """Profile maps only x509Subject/CN: a role requiring OU=Fleet refuses, one excluding OU=Finance admits."""
    ca = CA("mapping CA")
    cert, key = ca.issue(ou="Fleet")
    equals = provision(ra_endpoint, ca.pem, conditions={"StringEquals": {"aws:PrincipalTag/x509Subject/OU": "Fleet"}})
    negated = provision(ra_endpoint, ca.pem, conditions={"StringNotEquals": {"aws:PrincipalTag/x509Subject/OU": "Finance"}})
    client = ra_endpoint.client()
    assert create_session(ra_endpoint, cert, key, equals)[0] == 201
    for arns in (equals, negated):
        client.put_attribute_mapping(profileId=arns["profile_arn"], certificateField="x509Subject",
                                     mappingRules=[{"specifier": "CN"}])
    status, document = create_session(ra_endpoint, cert, key, equals)
    assert status == 403 and "StringEquals aws:PrincipalTag/x509Subject/OU" in document["message"]
    assert create_session(ra_endpoint, *ca.issue(ou="Finance"), negated)[0] == 201
