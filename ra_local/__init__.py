"""A local IAM Roles Anywhere endpoint for tests and dry runs.

Control plane per botocore's ``rolesanywhere`` model, CreateSession verified like AWS with its own
SigV4-X509 canonicalisation (independent of the collection's signer), credentials minted by moto STS.
"""
