from tests.support.aws import moto_server, ra_endpoint, ra_endpoint_tls  # noqa: F401  (fixtures)
