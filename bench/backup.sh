#!/usr/bin/env bash
# The backup benchmark, run on demand (not in CI): Tavern's archiver against
# `tar czf` on the same generated world; prints throughput, sizes and the
# ratios; then the same world as snapshots in a repository (the first
# backup, the unchanged world again, after 1 % of its files changed, a
# restore) with the goals beside them, and what a second world holding the
# same files stores in the first's repository and in its own. FILES, IMAGES, IMAGE_MB and RUNS size it (see the bench's source,
# crates/tavern-backup/benches/archive.rs).
#
#   bash bench/backup.sh
#   FILES=20000 IMAGES=50 bash bench/backup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -q -p tavern-backup --bench archive
