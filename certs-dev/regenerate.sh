#!/bin/sh
# Regenerates the development certificates used by `npm start` (the local demo).
# Self-signed, ECDSA P-256, for localhost, 127.0.0.1 and ::1; valid ten years.
# They protect nothing: the key is public in this repository. Never use them elsewhere.
set -eu
cd "$(dirname "$0")"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1 \
  -addext keyUsage=digitalSignature -addext extendedKeyUsage=serverAuth \
  -keyout localhost.key.pem -out localhost.cert.pem 2>/dev/null
chmod 0600 localhost.key.pem
echo "wrote $(pwd)/localhost.cert.pem and localhost.key.pem"
