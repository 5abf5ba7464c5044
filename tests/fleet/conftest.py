from tests.support.fleet import fleet  # noqa: F401
