// k6: the gRPC API — Send, and the reply from a Subscribe stream on the same conversation.
//   k6 run -e SCENARIO=daily -e API_KEY=$(cat .kefu/demo-api-key) loadtest/k6/grpc.js
// Env: GRPC_ADDR (127.0.0.1:50051), SHOP (demo), API_KEY, SCENARIO, RATE, DURATION,
// REPLY_TIMEOUT_MS (10000), MAX_P99_MS, MAX_ERROR_RATE, MAX_LOST. Uses server reflection, so
// no .proto files are needed.
import grpc from 'k6/net/grpc';
import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { message, scenario, thresholds } from './lib.js';

const ADDR = __ENV.GRPC_ADDR || '127.0.0.1:50051';
const SHOP = __ENV.SHOP || 'demo';
const REPLY_TIMEOUT_MS = Number(__ENV.REPLY_TIMEOUT_MS || 10000);

const e2e = new Trend('kefu_e2e_latency', true);
const sendErrors = new Rate('kefu_send_errors');
const lost = new Counter('kefu_lost_messages');

export const options = {
  scenarios: { bigsale: scenario(__ENV.SCENARIO || 'daily', __ENV.RATE, __ENV.DURATION) },
  thresholds: thresholds(__ENV),
};

const client = new grpc.Client();

export default function () {
  client.connect(ADDR, { plaintext: true, reflect: true });
  const metadata = { authorization: `Bearer ${__ENV.API_KEY}` };
  const m = message();
  const id = `k6g-${__VU}-${__ITER}-${Date.now()}`;
  const started = Date.now();
  const sent = client.invoke('kefu.session.v1.SessionRouterService/Send', {
    shop_id: SHOP,
    channel: m.channel,
    channel_user_id: id,
    channel_message_id: id,
    text: m.text,
  }, { metadata });
  const ok = sent && sent.status === grpc.StatusOK;
  sendErrors.add(!ok);
  check(sent, { sent: () => ok });
  if (!ok) {
    client.close();
    return;
  }
  // k6 renders protobuf JSON in lowerCamelCase; accept snake_case too.
  const messageId = sent.message.messageId || sent.message.message_id;
  const conversationId = sent.message.conversationId || sent.message.conversation_id;
  // Wait for this message's reply on a stream of its conversation.
  const stream = new grpc.Stream(client, 'kefu.session.v1.SessionRouterService/Subscribe', { metadata });
  let answered = false;
  const timer = setTimeout(() => {
    if (!answered) lost.add(1);
    stream.end();
    client.close();
  }, REPLY_TIMEOUT_MS);
  stream.on('data', (r) => {
    const reply = r.reply || {};
    if (!answered && (reply.messageId || reply.message_id) === messageId) {
      answered = true;
      e2e.add(Date.now() - started);
      clearTimeout(timer);
      stream.end();
      client.close();
    }
  });
  stream.on('error', () => sendErrors.add(true));
  stream.write({ shop_id: SHOP, conversation_id: conversationId, after_cursor: 0 });
}
