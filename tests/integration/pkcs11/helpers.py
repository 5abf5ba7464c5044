"""Independent views of a token for the tests: pkcs11-tool and openssl, never the code under test."""
import subprocess


def pkcs11_tool(token, *args, login=True):
    argv = ["pkcs11-tool", "--module", token.module_path, "--token-label", token.token_label]
    if login:
        argv += ["--login", "--pin", token.pin]  # short-lived test process; never do this on hosts
    return subprocess.run(argv + list(args), capture_output=True, text=True, env=token.process_env(), timeout=60)


def private_key_objects(token):
    """pkcs11-tool's listing of private keys: {label: block of text}."""
    listing = pkcs11_tool(token, "--list-objects", "--type", "privkey")
    assert listing.returncode == 0, listing.stderr
    blocks, current = {}, None
    for line in listing.stdout.splitlines():
        if line.startswith("Private Key Object"):
            current = []
            blocks[len(blocks)] = current
        if current is not None:
            current.append(line)
    result = {}
    for lines in blocks.values():
        label = next(line.split(":", 1)[1].strip() for line in lines if line.strip().startswith("label:"))
        result[label] = "\n".join(lines)
    return result


def openssl_req_verify(path):
    return subprocess.run(["openssl", "req", "-in", str(path), "-noout", "-verify"], capture_output=True, text=True,
                          timeout=30)


def openssl_req_text(path):
    proc = subprocess.run(["openssl", "req", "-in", str(path), "-noout", "-text", "-nameopt", "RFC2253"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
