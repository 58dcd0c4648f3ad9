#!/usr/bin/env bash
# The Debian packages rrm's tests use, installed when this is a Debian-like host and we are root;
# otherwise it says what is missing and carries on (rrm itself needs none of them).
#   time                     /usr/bin/time -v: the reference for measured peak memory in the tests
#   etcd-server              the fleet ledger's tests start their own 3-member cluster on loopback
#   prometheus               promtool checks /metrics, and a real server scrapes the agent
#   openssl, ca-certificates the etcd TLS test makes its certificates; the npm registry over HTTPS
#   python3-*, build-essential  the pip adapter's tests build a wheel and an sdist (with a C extension)
set -euo pipefail
PACKAGES=(time etcd-server prometheus openssl ca-certificates
  python3-setuptools python3-wheel python3-pip libpython3-dev build-essential)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null || [ "$(id -u)" -ne 0 ]; then
  echo "rrm: the tests need these Debian packages (install them as root): ${missing[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
