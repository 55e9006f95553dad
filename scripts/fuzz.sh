#!/usr/bin/env bash
# `make fuzz`: every cargo-fuzz target of fuzz/ (bodies in crates/kefu-fuzz) for FUZZ_SECONDS
# each, with libFuzzer's memory limits, on the pinned stable toolchain (RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz pass -Zsanitizer=address). Docs: docs/security.md, "Fuzzing".
#
#   FUZZ_SECONDS=60      time per target
#   FUZZ_TARGETS="a b"   only these targets (default: all)
#   FUZZ_RSS_MB=512      -rss_limit_mb; FUZZ_MALLOC_MB (default the same) -malloc_limit_mb
#   FUZZ_JOBS=1          libFuzzer -fork=N workers per target
#
# Generated corpora go to .kefu/fuzz/corpus/<target>/ (never committed; the hand-written seeds
# are fuzz/seeds/<target>/), crashes to .kefu/fuzz/artifacts/<target>/ (replay: target/fuzz/x86_64-unknown-linux-gnu/release/<target>
# <file>), and a table of
# executions and corpus sizes to .kefu/fuzz/summary.txt. Exits 1 when a target failed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KEFU_ROOT"

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-512}
FUZZ_MALLOC_MB=${FUZZ_MALLOC_MB:-$FUZZ_RSS_MB}
FUZZ_JOBS=${FUZZ_JOBS:-1}
# target:max_len, as crates/kefu-fuzz/src/lib.rs (TARGETS) has them; a test keeps the two equal.
ALL_TARGETS="http_ingress:4096 event_decoders:2048 shopify_order:8192 order_webhook:8192
webhook_signature:1024 order_csv:4096 knowledge_bundle:8192 intent_examples:4096 entities:1024
intent_model:4096 shop_model:8192"

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
export RUSTC_BOOTSTRAP=1
# fuzz/ is its own workspace; its lock file is the workspace's (same versions as the services
# ship with) plus libfuzzer-sys, pinned in fuzz/Cargo.toml.
cp Cargo.lock fuzz/Cargo.lock
BUILD=(--codegen-units 16 --target-dir "$KEFU_ROOT/target/fuzz")
EXTRA=()
if [ "$FUZZ_JOBS" -gt 1 ]; then EXTRA+=("-fork=$FUZZ_JOBS"); fi
log "building the fuzz targets (libFuzzer + AddressSanitizer)"
(cd fuzz && cargo fuzz build "${BUILD[@]}")
bin="$KEFU_ROOT/target/fuzz/x86_64-unknown-linux-gnu/release"

out="$KEFU_ROOT/.kefu/fuzz"
mkdir -p "$out"
summary="$out/summary.txt"
printf '%-18s %8s %12s %8s %8s  %s\n' target seconds executions exec/s corpus result >"$summary"
failed=0
for entry in $ALL_TARGETS; do
  t=${entry%%:*}
  max_len=${entry##*:}
  if [ -n "${FUZZ_TARGETS:-}" ] && ! [[ " $FUZZ_TARGETS " == *" $t "* ]]; then
    continue
  fi
  corpus="$out/corpus/$t"
  mkdir -p "$corpus" "$out/artifacts/$t"
  log "fuzzing $t for ${FUZZ_SECONDS}s"
  result=ok
  # The binary `cargo fuzz run` would start, run directly: the tree is built once above.
  "$bin/$t" "$corpus" "fuzz/seeds/$t" \
    -max_total_time="$FUZZ_SECONDS" -max_len="$max_len" -rss_limit_mb="$FUZZ_RSS_MB" \
    -malloc_limit_mb="$FUZZ_MALLOC_MB" -timeout=10 -print_final_stats=1 \
    "${EXTRA[@]}" \
    -artifact_prefix="$out/artifacts/$t/" >"$out/$t.log" 2>&1 || result=FAILED
  execs=$(grep -a 'stat::number_of_executed_units' "$out/$t.log" | awk '{s+=$2} END {print s+0}')
  rate=$(grep -a 'stat::average_exec_per_sec' "$out/$t.log" | awk '{s+=$2} END {print s+0}')
  files=$(find "$corpus" -type f | wc -l)
  printf '%-18s %8s %12s %8s %8s  %s\n' "$t" "$FUZZ_SECONDS" "$execs" "$rate" "$files" "$result" >>"$summary"
  if [ "$result" != ok ]; then
    failed=1
    tail -n 40 "$out/$t.log" >&2
  fi
done
cat "$summary"
exit "$failed"
