# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `key` option of x509_ca, and `ca_key` of x509_issue and x509_crl: the CA private key, in a file or on a token.

Plain literals (documentation tooling reads them without running code); the two fragments differ only in the
option's name.
"""


class ModuleDocFragment:
    # x509_ca names the option `key`.
    DOCUMENTATION = r"""
options:
  key:
    description:
      - The CA private key, either a PEM file (O(key.path), O(key.passphrase)) or a key pair on a PKCS#11
        token (O(key.module_path), O(key.token_label), O(key.pin) or O(key.pin_file), O(key.label), O(key.id)).
      - A token key never leaves the token; the module logs in once and signs on the token.
    type: dict
    required: true
    suboptions:
      path:
        description: PEM private key file (PKCS#8 or traditional, EC P-256/P-384 or RSA).
        type: path
      passphrase:
        description: Passphrase of an encrypted key file.
        type: str
      module_path:
        description: PKCS#11 library of the token, e.g. C(/usr/lib/softhsm/libsofthsm2.so).
        type: path
      token_label:
        description: Exact label of the token (never a slot number).
        type: str
      pin:
        description: User PIN of the token. Give O(key.pin) or O(key.pin_file), not both.
        type: str
      pin_file:
        description: File holding the user PIN (first line). Preferred over O(key.pin).
        type: path
      label:
        description: CKA_LABEL of the CA key pair on the token.
        type: str
      id:
        description: CKA_ID of the CA key pair, as hex (e.g. C(01)); needed only when labels repeat.
        type: str
      token_env:
        description:
          - Environment for the PKCS#11 library, set before it loads, e.g. C(SOFTHSM2_CONF) or
            C(TPM2_PKCS11_STORE).
        type: dict
        default: {}
"""

    # x509_issue and x509_crl name it `ca_key`.
    CA_KEY_OPTION = r"""
options:
  ca_key:
    description:
      - The CA private key, either a PEM file (O(ca_key.path), O(ca_key.passphrase)) or a key pair on a PKCS#11
        token (O(ca_key.module_path), O(ca_key.token_label), O(ca_key.pin) or O(ca_key.pin_file), O(ca_key.label), O(ca_key.id)).
      - A token key never leaves the token; the module logs in once and signs on the token.
    type: dict
    required: true
    suboptions:
      path:
        description: PEM private key file (PKCS#8 or traditional, EC P-256/P-384 or RSA).
        type: path
      passphrase:
        description: Passphrase of an encrypted key file.
        type: str
      module_path:
        description: PKCS#11 library of the token, e.g. C(/usr/lib/softhsm/libsofthsm2.so).
        type: path
      token_label:
        description: Exact label of the token (never a slot number).
        type: str
      pin:
        description: User PIN of the token. Give O(ca_key.pin) or O(ca_key.pin_file), not both.
        type: str
      pin_file:
        description: File holding the user PIN (first line). Preferred over O(ca_key.pin).
        type: path
      label:
        description: CKA_LABEL of the CA key pair on the token.
        type: str
      id:
        description: CKA_ID of the CA key pair, as hex (e.g. C(01)); needed only when labels repeat.
        type: str
      token_env:
        description:
          - Environment for the PKCS#11 library, set before it loads, e.g. C(SOFTHSM2_CONF) or
            C(TPM2_PKCS11_STORE).
        type: dict
        default: {}
"""
