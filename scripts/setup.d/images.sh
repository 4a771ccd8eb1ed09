#!/usr/bin/env bash
# OCI image tooling (scripts/images.sh, testkit/tests/images.rs): skopeo pushes and pulls,
# docker-registry (the CNCF distribution registry) is the real local registry of the test,
# jq writes the image JSON, envsubst (gettext-base) fills deploy/'s placeholders. No daemon.
set -euo pipefail
need=()
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v envsubst >/dev/null 2>&1 || need+=(gettext-base)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "setup.d/images: ok (skopeo $(skopeo --version | cut -d" " -f3), $(docker-registry --version 2>/dev/null | cut -d" " -f3))"
