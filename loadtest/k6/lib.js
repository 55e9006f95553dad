// Shared by http.js and grpc.js: the big-sale message mix (the same weights as the Goose load
// test, loadtest/goose/src/mix.rs), the scenarios and the thresholds.

const CATEGORIES = [
  { name: 'order_status', weight: 22,
    zh: ['我的订单{order}到哪了', '订单{order}发货了吗', '帮我查一下订单{order}'],
    en: ['where is my order {order}?', 'has order {order} shipped yet?', 'status of order {order} please'] },
  { name: 'logistics', weight: 14,
    zh: ['快递怎么还没到，都三天了', '物流一直没更新', '包裹什么时候能到'],
    en: ['my parcel is late, it has been three days', "tracking hasn't updated for days", 'when will my package arrive?'] },
  { name: 'returns', weight: 10,
    zh: ['我要退货，尺码不合适', '怎么申请换货', '收到的商品有破损，想退'],
    en: ['I want to return this, wrong size', 'how do I exchange an item?', 'the item arrived damaged, I want to return it'] },
  { name: 'refund', weight: 6, zh: ['退款什么时候到账', '我的退款怎么还没收到'],
    en: ['when will I get my refund?', "I still haven't received my refund"] },
  { name: 'coupon', weight: 8, zh: ['优惠券怎么用不了', '满减活动怎么参加', '双十一的券可以叠加吗'],
    en: ["why can't I use my coupon?", 'can I combine two coupons?', 'how do I get the discount?'] },
  { name: 'presale', weight: 6, zh: ['预售定金可以退吗', '尾款什么时候付', '预售商品什么时候发货'],
    en: ['is the presale deposit refundable?', 'when do I pay the balance for the presale?'] },
  { name: 'payment', weight: 6, zh: ['付款失败了怎么办', '扣了两次钱', '可以用花呗分期吗'],
    en: ['my payment failed, what should I do?', 'I was charged twice', 'can I pay in installments?'] },
  { name: 'product', weight: 8, zh: ['这件有M码吗', '这个是纯棉的吗', '有没有黑色'],
    en: ['does this come in size M?', 'is this jacket waterproof?', 'what colours does it come in?'] },
  { name: 'cancel_change', weight: 6, zh: ['订单{order}可以取消吗', '我想改一下收货地址'],
    en: ['please cancel order {order}', 'can I change my delivery address?'] },
  { name: 'human', weight: 4, zh: ['转人工', '我要找客服', '人工客服在吗'],
    en: ['I want to talk to a person', 'agent please', 'connect me to a human'] },
  { name: 'chit_chat', weight: 10, zh: ['你好', '在吗', '谢谢', '好的谢谢'],
    en: ['hello', 'hi there', 'thanks!', 'thank you, bye'] },
];

const CHANNELS = [['wechat', 40], ['taobao', 30], ['web', 20], ['douyin', 10]];

function weighted(items, weightOf) {
  const total = items.reduce((s, it) => s + weightOf(it), 0);
  let x = Math.random() * total;
  for (const it of items) {
    x -= weightOf(it);
    if (x < 0) return it;
  }
  return items[items.length - 1];
}

export function message() {
  const c = weighted(CATEGORIES, (it) => it.weight);
  const zh = Math.random() < 0.7;
  const texts = zh ? c.zh : c.en;
  const order = '2026111' + String(Math.floor(Math.random() * 100000)).padStart(5, '0');
  return {
    category: c.name,
    language: zh ? 'zh' : 'en',
    channel: weighted(CHANNELS, (it) => it[1])[0],
    text: texts[Math.floor(Math.random() * texts.length)].replace('{order}', order),
  };
}

// 1M messages/day ≈ 11.6/s on average; a big-sale peak hour is 10-20× that.
export const DAILY_RATE = 12;

const SHAPES = {
  daily: { rate: DAILY_RATE, duration: '60s', rampUp: '5s' },
  'peak-5x': { rate: DAILY_RATE * 5, duration: '5m', rampUp: '20s' },
  'peak-10x': { rate: DAILY_RATE * 10, duration: '5m', rampUp: '30s' },
  soak: { rate: DAILY_RATE, duration: '30m', rampUp: '10s' },
};

// An open-loop arrival rate (k6's ramping-arrival-rate): k6 starts iterations at the rate
// whatever the latency, adding VUs as needed.
export function scenario(name, rateOverride, durationOverride) {
  const shape = SHAPES[name];
  if (!shape) throw new Error(`unknown scenario ${name}; use daily, peak-5x, peak-10x or soak`);
  const rate = Number(rateOverride || shape.rate);
  return {
    executor: 'ramping-arrival-rate',
    startRate: 1,
    timeUnit: '1s',
    preAllocatedVUs: Math.max(10, Math.ceil(rate / 2)),
    maxVUs: Math.max(50, rate * 10),
    stages: [
      { target: rate, duration: shape.rampUp },
      { target: rate, duration: durationOverride || shape.duration },
    ],
  };
}

export function thresholds(env) {
  return {
    // End to end: the message sent until its reply (HTTP wait_ms or the Subscribe stream).
    kefu_e2e_latency: [`p(99)<${env.MAX_P99_MS || 300}`],
    kefu_send_errors: [`rate<${env.MAX_ERROR_RATE || 0.01}`],
    kefu_lost_messages: [`count<=${env.MAX_LOST || 0}`],
  };
}
