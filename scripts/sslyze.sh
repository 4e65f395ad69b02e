#!/usr/bin/env bash
# Checks the TLS the server really offers, from the outside: starts the debug server on a fresh
# data directory and scans it with sslyze against Mozilla's "intermediate" configuration
# (https://ssl-config.mozilla.org/), then reads sslyze's JSON to check our own, stricter rules:
# SSL 2/3, TLS 1.0 and TLS 1.1 refused; TLS 1.2 and 1.3 offered; every accepted suite an
# ECDHE (forward-secret) AEAD suite (AES-GCM or ChaCha20-Poly1305), no CBC, no RSA key exchange.
# Fails on any compliance issue and on any broken rule.
#
# The certificate. Mozilla's profile also judges the certificate: its chain must validate
# against a trust store, and its life span must be under 366 days. The self-signed certificate
# the server makes on first start fails both by design: nothing trusts it until a client pins
# it, and rcgen makes it valid from 1975 to 4096 (sslyze reports `certificate_path_validation`
# and `maximum_certificate_lifespan`). Rather than excluding those checks, this run serves a
# certificate such a deployment would have, through `tls_cert_file`/`tls_key_file`: a test CA
# made here (P-256, valid 2 days) issues a 90-day P-256 leaf for `localhost` (SAN, server-auth
# EKU, key identifiers), and sslyze trusts that CA through `--certinfo_ca_file`. Every check of
# the profile then runs, none is skipped. Nothing else differs: the TLS configuration is built
# by the same code whichever certificate is served.
#
# Mozilla's intermediate list also allows some suites we refuse (CBC and DHE ones); the profile
# only fails a server for offering a suite outside its list, not for leaving one out, so our
# narrower set is compliant.
#
# Traffic goes only to the server started here, on 127.0.0.1 (named `localhost`: rustls does not
# take an IP address as the TLS server name).
#
# Environment (all optional):
#   CARGO_TARGET_DIR     where the binary and the sslyze venv live                  (default target)
#   SSLYZE_NO_BUILD=1    use the debug binary as it is, without `cargo build` (CI: the test run
#                        just built it)
set -euo pipefail

cd "$(dirname "$0")/.."

SSLYZE_VERSION=6.3.1
target_dir=${CARGO_TARGET_DIR:-target}
venv="$target_dir/sslyze-venv"
binary="$target_dir/debug/rampart"

script=sslyze.sh
work=$(mktemp -d /tmp/rampart-sslyze.XXXXXX)
# shellcheck source=lib/live-server.sh
source scripts/lib/live-server.sh
pinned_venv "$venv" sslyze "$SSLYZE_VERSION"
debug_binary "${SSLYZE_NO_BUILD:-0}" SSLYZE_NO_BUILD

echo "== making a test CA and a localhost certificate it issues"
"$venv/bin/python" - "$work" <<'EOF'
import datetime, os, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
import ipaddress

work = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)

def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

ca_key = ec.generate_private_key(ec.SECP256R1())
ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
ca = (
    x509.CertificateBuilder()
    .subject_name(name("Rampart sslyze test CA"))
    .issuer_name(name("Rampart sslyze test CA"))
    .public_key(ca_key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(hours=1))
    .not_valid_after(now + datetime.timedelta(days=2))
    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    .add_extension(
        x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
    )
    .add_extension(ca_ski, critical=False)
    .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    .sign(ca_key, hashes.SHA256())
)

key = ec.generate_private_key(ec.SECP256R1())
leaf = (
    x509.CertificateBuilder()
    .subject_name(name("localhost"))
    .issuer_name(ca.subject)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(hours=1))
    .not_valid_after(now + datetime.timedelta(days=90))
    .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    .add_extension(
        x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
    )
    .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    .add_extension(
        x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        ),
        critical=False,
    )
    .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    .sign(ca_key, hashes.SHA256())
)

def write(file, data, mode=0o644):
    path = os.path.join(work, file)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as out:
        out.write(data)

write("ca.pem", ca.public_bytes(serialization.Encoding.PEM))
write("cert.pem", leaf.public_bytes(serialization.Encoding.PEM))
write(
    "key.pem",
    key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ),
    0o600,
)
EOF

start_server RAMPART_TLS_CERT_FILE="$work/cert.pem" RAMPART_TLS_KEY_FILE="$work/key.pem"

export NO_PROXY=localhost,127.0.0.1 no_proxy=localhost,127.0.0.1
# sslyze's exit status is non-zero unless the server complies with the profile.
status=0
"$venv/bin/sslyze" --mozilla_config=intermediate --certinfo_ca_file "$work/ca.pem" \
    --json_out "$work/sslyze.json" "localhost:$port" >"$work/sslyze.out" 2>&1 || status=$?
sed -n '/COMPLIANCE AGAINST/,$p' "$work/sslyze.out"
if [[ $status -ne 0 ]]; then
    echo "sslyze.sh: sslyze exited with status $status; its report:" >&2
    cat "$work/sslyze.out" >&2
    exit 1
fi

echo "== our rules, from sslyze's JSON"
"$venv/bin/python" - "$work/sslyze.json" <<'EOF'
import json, sys

report = json.load(open(sys.argv[1]))
(server,) = report["server_scan_results"]
assert server["scan_status"] == "COMPLETED", server["scan_status"]
scans = server["scan_result"]
failures = []

def accepted(field):
    scan = scans[field]
    if scan["status"] != "COMPLETED":
        failures.append(f"{field}: scan {scan['status']}")
        return []
    return [s["cipher_suite"]["name"] for s in scan["result"]["accepted_cipher_suites"]]

for field in [
    "ssl_2_0_cipher_suites",
    "ssl_3_0_cipher_suites",
    "tls_1_0_cipher_suites",
    "tls_1_1_cipher_suites",
]:
    suites = accepted(field)
    if suites:
        failures.append(f"{field}: accepted {suites}, expected the version refused")
    else:
        print(f"  {field}: refused")

for field in ["tls_1_2_cipher_suites", "tls_1_3_cipher_suites"]:
    suites = accepted(field)
    if not suites:
        failures.append(f"{field}: nothing accepted, expected the version offered")
    for suite in suites:
        aead = "_GCM_" in suite or "CHACHA20_POLY1305" in suite
        forward_secret = field == "tls_1_3_cipher_suites" or suite.startswith("TLS_ECDHE_")
        if not (aead and forward_secret):
            failures.append(f"{field}: {suite} is not an ECDHE AEAD suite")
    print(f"  {field}: {', '.join(suites)}")

if failures:
    print("sslyze.sh: FAILED", *failures, sep="\n  ", file=sys.stderr)
    sys.exit(1)
EOF
echo "== sslyze: compliant with Mozilla intermediate; TLS 1.2+ with ECDHE AEAD suites only"
