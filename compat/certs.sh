#!/usr/bin/env bash
# Writes a throwaway PKI for the TLS compatibility tests into DIR (openssl CLI, EC P-256 keys,
# unencrypted PKCS#8, valid for two days). Nothing here is checked in: run at test time.
#   ca.pem                  the CA the broker and the clients trust
#   broker.pem              broker key + certificate (SAN 127.0.0.1, localhost): ssl.keystore.location
#   client.crt, client.key  a client certificate from ca.pem: CN=alice,OU=t
#   rogue-ca.pem            another CA
#   rogue.crt, rogue.key    a client certificate from rogue-ca.pem: CN=mallory
set -euo pipefail
dir=${1:?usage: certs.sh DIR}
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name subject
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "$2" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}

leaf() { # name subject ca extensions
    key "$1.key"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    printf '%b' "$4" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial \
        -out "$1.crt" -days 2 -extfile "$1.ext" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

ca ca "/CN=spate-test-ca"
ca rogue-ca "/CN=rogue-ca"
leaf broker "/CN=localhost" ca \
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
cat broker.key broker.crt > broker.pem
leaf client "/OU=t/CN=alice" ca \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
leaf rogue "/CN=mallory" rogue-ca \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
