#!/usr/bin/env bash
# Builds Lifeline's container image without a Docker daemon: a static binary, then deploy/cmd/lifeline-image
# (go-containerregistry) puts it on no base at all, with CA certificates and the non-root user 65532, as
# deploy/Dockerfile's final stage does. The digest is reproducible (SOURCE_DATE_EPOCH sets the time stamps).
#
#   deploy/build-image.sh --tarball /tmp/lifeline.tar          # then: docker load -i / podman load -i
#   deploy/build-image.sh --oci-layout /tmp/lifeline-oci       # then: skopeo copy oci:/tmp/lifeline-oci docker://...
#   deploy/build-image.sh --push registry.example.com/lifeline:1.0.0   # with ~/.docker/config.json credentials
#
# GOARCH=arm64 builds the arm64 image. VERSION (default: git describe) goes into the binary and the labels.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CGO_ENABLED=0 GOOS=linux go build -trimpath \
  -ldflags "-s -w -X github.com/lifeline-sre/lifeline/internal/cli.Version=${version}" \
  -o "$out/lifeline" ./cmd/lifeline
cd deploy
go run ./cmd/lifeline-image --binary "$out/lifeline" --version "$version" --tag "lifeline:${version}" "$@"
