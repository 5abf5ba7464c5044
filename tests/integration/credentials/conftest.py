"""Fixtures for the credentials tests: the collection on sys.path, real tokens, CA, endpoint and moto."""
import sys

from tests.support.ansible import ensure_collection_link

# The signer and helper are imported as the collection's module_utils, exactly as hosts import them.
if str(ensure_collection_link()) not in sys.path:
    sys.path.insert(0, str(ensure_collection_link()))
