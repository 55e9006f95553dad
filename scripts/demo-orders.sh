#!/usr/bin/env bash
# Prints the demo shop's orders as kefu.order.v1 JSON lines (docs/orders.md), with times
# relative to now: orders in every state, parcels with carrier scans (one of them late), a
# return being refunded. `make run` writes them once to .kefu/demo-orders.jsonl and imports
# that file with `kefu orders import` on every start (a re-import changes nothing).
#
# Customers: `web` / `cli-user` (what `kefu chat` is by default) has many orders;
# `wechat` / `wx-demo` has one open order.
set -euo pipefail

t() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ; }

order() { # id status buyer_json items_json shipments_json returns_json placed updated total
  printf '{"format":"kefu.order.v1","order_id":"%s","status":"%s","currency":"CNY","total_minor":%s,"placed_at":"%s","updated_at":"%s","buyer":%s,"items":%s,"shipments":%s,"returns":%s}\n' \
    "$1" "$2" "$9" "$7" "$8" "$3" "$4" "$5" "$6"
}

cli='{"buyer_id":"demo-1","name":"Demo Customer","channel":"web","channel_user_id":"cli-user"}'
wx='{"buyer_id":"demo-2","name":"微信顾客","phone":"13800138000","channel":"wechat","channel_user_id":"wx-demo"}'
tea='[{"sku":"TEA-LJ-250","title":"西湖龙井 250g","quantity":1,"price_minor":12900}]'
mug='[{"sku":"MUG-01","title":"Ceramic mug","quantity":2,"price_minor":3900}]'
coat='[{"sku":"COAT-M","title":"Down coat (M)","quantity":1,"price_minor":59900}]'

order 20261111001 shipped "$cli" "$tea" \
  "[{\"carrier\":\"SF\",\"tracking_number\":\"SF1000000000001\",\"estimated_delivery\":\"$(t '+6 hours')\",\"events\":[{\"status\":\"picked_up\",\"location\":\"杭州\",\"at\":\"$(t '-2 days')\"},{\"status\":\"in_transit\",\"location\":\"上海转运中心\",\"at\":\"$(t '-1 day')\"},{\"status\":\"out_for_delivery\",\"location\":\"上海浦东新区\",\"at\":\"$(t '-2 hours')\"}]}]" \
  '[]' "$(t '-3 days')" "$(t '-2 hours')" 12900
order 20261111002 paid "$cli" "$mug" '[]' '[]' "$(t '-1 day')" "$(t '-1 day')" 7800
order 20261111003 delivered "$cli" "$tea" \
  "[{\"carrier\":\"ZTO\",\"tracking_number\":\"ZT1000000000003\",\"events\":[{\"status\":\"delivered\",\"location\":\"北京朝阳区\",\"at\":\"$(t '-6 days')\"}]}]" \
  "[{\"return_id\":\"R-1003\",\"status\":\"received\",\"reason\":\"wrong size\",\"refund_minor\":12900,\"updated_at\":\"$(t '-1 day')\"}]" \
  "$(t '-10 days')" "$(t '-1 day')" 12900
order 20261111004 shipped "$cli" "$coat" \
  "[{\"carrier\":\"YTO\",\"tracking_number\":\"YT1000000000004\",\"estimated_delivery\":\"$(t '-2 days')\",\"events\":[{\"status\":\"picked_up\",\"location\":\"义乌\",\"at\":\"$(t '-7 days')\"},{\"status\":\"in_transit\",\"location\":\"金华转运中心\",\"at\":\"$(t '-5 days')\"}]}]" \
  '[]' "$(t '-8 days')" "$(t '-5 days')" 59900
order 20261111005 cancelled "$cli" "$mug" '[]' '[]' "$(t '-12 days')" "$(t '-11 days')" 7800
order 20261111006 pending_payment "$cli" "$coat" '[]' '[]' "$(t '-1 hour')" "$(t '-1 hour')" 59900
order 20261111007 refunded "$cli" "$tea" '[]' \
  "[{\"return_id\":\"R-1007\",\"status\":\"refunded\",\"reason\":\"damaged\",\"refund_minor\":12900,\"updated_at\":\"$(t '-20 days')\"}]" \
  "$(t '-30 days')" "$(t '-20 days')" 12900
order 20261111101 shipped "$wx" "$tea" \
  "[{\"carrier\":\"JD\",\"tracking_number\":\"JDVA00000000101\",\"events\":[{\"status\":\"in_transit\",\"location\":\"广州转运中心\",\"at\":\"$(t '-5 hours')\"}]}]" \
  '[]' "$(t '-2 days')" "$(t '-5 hours')" 12900
