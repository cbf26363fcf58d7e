#!/usr/bin/env bash
# Builds the local container image of Tavern's stand-in for Foundry: FROM
# scratch, the statically linked `foundry-stub` binary (the `tavern-stub`
# crate: the stand-in alone, quick to build) on port 30000 with its data in
# /data, as felddy's image lays it out. The
# docker runtime runs it for the `stub` release; the docker tests need it.
#
#   bash scripts/stub-image.sh            # tags tavern-foundry-stub:latest
#   IMAGE=my/stub:dev bash scripts/stub-image.sh
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-tavern-foundry-stub:latest}
TARGET=x86_64-unknown-linux-gnu
RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build -q --profile stub-image --target "$TARGET" -p tavern-stub --bin foundry-stub
CONTEXT=$(mktemp -d)
trap 'rm -rf "$CONTEXT"' EXIT
cp "target/$TARGET/stub-image/foundry-stub" "$CONTEXT/foundry-stub"
cat > "$CONTEXT/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY foundry-stub /foundry-stub
VOLUME /data
EXPOSE 30000
ENTRYPOINT ["/foundry-stub", "--dataPath=/data", "--port=30000"]
DOCKERFILE
docker build -q -t "$IMAGE" "$CONTEXT" >/dev/null
echo "built $IMAGE"
