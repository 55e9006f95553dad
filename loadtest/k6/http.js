// k6: the HTTP ingress (POST /v1/messages with wait_ms, so the answer carries the reply).
//   k6 run -e SCENARIO=peak-5x -e API_KEY=$(cat .kefu/demo-api-key) loadtest/k6/http.js
// Env: BASE_URL (http://127.0.0.1:8080), SHOP (demo), API_KEY, SCENARIO, RATE, DURATION,
// WAIT_MS (10000), MAX_P99_MS, MAX_ERROR_RATE, MAX_LOST.
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { message, scenario, thresholds } from './lib.js';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const SHOP = __ENV.SHOP || 'demo';
const WAIT_MS = Number(__ENV.WAIT_MS || 10000);

const e2e = new Trend('kefu_e2e_latency', true);
const sendErrors = new Rate('kefu_send_errors');
const lost = new Counter('kefu_lost_messages');

export const options = {
  scenarios: { bigsale: scenario(__ENV.SCENARIO || 'daily', __ENV.RATE, __ENV.DURATION) },
  thresholds: thresholds(__ENV),
};

export default function () {
  const m = message();
  const id = `k6-${__VU}-${__ITER}-${Date.now()}`;
  const res = http.post(`${BASE_URL}/v1/messages`, JSON.stringify({
    shop_id: SHOP,
    channel: m.channel,
    channel_user_id: id,
    channel_message_id: id,
    text: m.text,
    wait_ms: WAIT_MS,
  }), {
    headers: { 'content-type': 'application/json', authorization: `Bearer ${__ENV.API_KEY}` },
    timeout: `${WAIT_MS + 5000}ms`,
    tags: { category: m.category, language: m.language },
  });
  const accepted = res.status === 200 || res.status === 202;
  sendErrors.add(!accepted);
  if (!accepted) return;
  // 200: answered within wait_ms; 202: accepted but not answered in time = lost.
  if (res.status === 200) {
    e2e.add(res.timings.duration);
  } else {
    lost.add(1);
  }
  check(res, { answered: (r) => r.status === 200 });
}
