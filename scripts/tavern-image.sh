#!/usr/bin/env bash
# Builds Tavern's container image (see ../Dockerfile): the `tavern` binary
# with every driver and adapter (`--features full`), statically linked, with
# the CA roots of this machine, FROM scratch; and the library that gives
# Foundry a stable host name on ECS Fargate (libtavern_hostname.so, built
# for glibc: the init container copies it for Foundry's container).
#
#   bash scripts/tavern-image.sh                         # tags tavern:VERSION, the dist (fat-LTO) build
#   IMAGE=registry.example.org/tavern:1 bash scripts/tavern-image.sh
#   PROFILE=stub-image IMAGE=tavern:test bash scripts/tavern-image.sh   # quicker, for tests
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
IMAGE=${IMAGE:-tavern:$VERSION}
PROFILE=${PROFILE:-dist}
TARGET=x86_64-unknown-linux-gnu
CA=${CA:-/etc/ssl/certs/ca-certificates.crt}
[[ -r "$CA" ]] || { echo "no CA roots at $CA (install ca-certificates, or set CA=FILE)" >&2; exit 1; }
# Only the final binary is static: the explicit --target keeps build
# scripts and proc-macros dynamic.
RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build -q --profile "$PROFILE" --target "$TARGET" -p tavern --bin tavern --features full
# The library is loaded by Foundry's Node.js: a shared object against the
# C library, not static.
cargo build -q --profile "$PROFILE" --target "$TARGET" -p tavern-hostname
CONTEXT=$(mktemp -d)
trap 'rm -rf "$CONTEXT"' EXIT
cp "target/$TARGET/$PROFILE/tavern" "$CONTEXT/tavern"
cp "target/$TARGET/$PROFILE/libtavern_hostname.so" "$CONTEXT/libtavern_hostname.so"
cp "$CA" "$CONTEXT/ca-certificates.crt"
docker build -q -t "$IMAGE" -f Dockerfile "$CONTEXT" >/dev/null
echo "built $IMAGE"
