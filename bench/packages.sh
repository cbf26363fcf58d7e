#!/usr/bin/env bash
# The package library's benchmark (run on demand, not in CI): disk used by
# 30 worlds sharing 20 library packages, and the time linking 50 packages
# adds to a world's start. See crates/tavern-runtime/benches/packages.rs;
# WORLDS, PACKAGES, PACKAGE_MB, LINKED and RUNS change the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q -p tavern-runtime --bench packages
