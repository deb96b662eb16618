#!/usr/bin/env bash
# The whole test suite: installs what is missing (scripts/setup.sh), then go vet and every test with the race
# detector, including the end-to-end tests with openai-go, the npm openai client and headless Chromium, and the
# deployment artefacts' tests in deploy/ (a module of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== go vet ./..."
go vet ./...
echo "== go test -race ./..."
log=$(mktemp)
set +e
go test -race -count=1 -timeout 20m ./... 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# deploy/ is a module of its own (Helm, the Kubernetes API types and go-containerregistry stay out of the
# product's go.mod): the chart, the image and the systemd unit.
echo "== deploy/: go vet and go test -race"
(cd deploy && go vet ./... && go test -race -count=1 -timeout 20m ./...) 2>&1 | tee -a "$log"
dstatus=${PIPESTATUS[0]}
[ "$status" != 0 ] || status=$dstatus
set -e
if [ "$status" -eq 0 ]; then
  # The trust boundary's differential fuzz targets, each for a short bounded time (docs/security.md).
  echo "== fuzz (bounded)"
  for target in FuzzRequestJSON FuzzRequestMultipart FuzzRequestRoute FuzzRegionResponse; do
    if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "${LIFELINE_FUZZTIME:-10s}" -parallel 1 ./failover >"$log.fuzz" 2>&1; then
      cat "$log.fuzz"
      status=1
    fi
    tail -1 "$log.fuzz"
  done
fi
passed=$(grep -c '^ok ' "$log" || true)
failed=$(grep -c '^FAIL\s' "$log" || true)
echo "packages: $passed passed, $failed failed"
exit "$status"
