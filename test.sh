#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit, end-to-end and corpus-replay tests.
# Works on a fresh machine of this kind: it installs what the tests need when it is missing.
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the tests use: `kill` from procps (signal tests), `script` from bsdutils (a
# terminal for the Ctrl-C test), `turnserver` from coturn (TURN test and the NAT lab), `ip` from
# iproute2 (network namespaces), `nft` from nftables (the NAT lab's routers and firewalls).
packages=(procps bsdutils coturn iproute2 nftables)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "== installing Debian packages: ${missing[*]}"
  SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "== cargo fmt --check"
cargo fmt --all --check
cargo fmt --manifest-path plugins/Cargo.toml --all --check
echo "== WASM plugins (the tests load them): plugins/build.sh"
bash plugins/build.sh
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== plugin crates' own tests (host target)"
cargo test --manifest-path plugins/Cargo.toml --workspace --locked
