from tests.support.tokens import softhsm_token, swtpm, tpm_token  # noqa: F401
