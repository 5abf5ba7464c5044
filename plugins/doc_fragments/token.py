# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Token options shared by the PKCS#11 modules (argument spec: module_utils/_token_options.py).

Plain literals (documentation tooling reads them without running code).
"""


class ModuleDocFragment:
    # The token's location and the PIN.
    DOCUMENTATION = r"""
options:
  module_path:
    description:
      - Absolute path of the token's PKCS#11 library, for example C(/usr/lib/softhsm/libsofthsm2.so) (SoftHSM2)
        or C(/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so) (tpm2-pkcs11).
      - Required; the module fails with a hint when it is missing or does not exist.
    type: path
  token_label:
    description:
      - Exact label of the token (at most 32 bytes). Tokens are always selected by label, never by slot
        number, because slot numbers change when tokens are added.
    type: str
    required: true
  token_env:
    description:
      - Environment variables set before the PKCS#11 library is loaded, for example C(SOFTHSM2_CONF) for
        SoftHSM2 or C(TPM2_PKCS11_STORE) and C(TPM2_PKCS11_TCTI) for tpm2-pkcs11.
    type: dict
    default: {}

  pin:
    description:
      - User PIN of the token (keep it in Ansible Vault). Give O(pin) or O(pin_file).
      - The module logs in exactly once and never retries a rejected PIN (a TPM locks after 3 failures).
    type: str
  pin_file:
    description:
      - File on the managed host whose content is the user PIN (a trailing newline is ignored).
      - It must not be accessible by group or others (mode 0600 or stricter), else the module refuses it.
    type: path

requirements:
  - python-pkcs11 >= 0.7 on the managed host
  - cryptography >= 36 on the managed host
"""

    # The token's location only (modules that never log in).
    LOCATION = r"""
options:
  module_path:
    description:
      - Absolute path of the token's PKCS#11 library, for example C(/usr/lib/softhsm/libsofthsm2.so) (SoftHSM2)
        or C(/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so) (tpm2-pkcs11).
      - Required; the module fails with a hint when it is missing or does not exist.
    type: path
  token_label:
    description:
      - Exact label of the token (at most 32 bytes). Tokens are always selected by label, never by slot
        number, because slot numbers change when tokens are added.
    type: str
    required: true
  token_env:
    description:
      - Environment variables set before the PKCS#11 library is loaded, for example C(SOFTHSM2_CONF) for
        SoftHSM2 or C(TPM2_PKCS11_STORE) and C(TPM2_PKCS11_TCTI) for tpm2-pkcs11.
    type: dict
    default: {}

requirements:
  - python-pkcs11 >= 0.7 on the managed host
  - cryptography >= 36 on the managed host
"""
