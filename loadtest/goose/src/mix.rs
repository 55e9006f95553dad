//! The big-sale message mix: what customers write during Double 11, in Chinese and English.
//! Weights follow the brief: order and logistics questions dominate, then returns, coupons and
//! presale rules, payments, product questions, requests for a person and chit-chat.
use rand::{Rng, seq::IndexedRandom};

/// A category, its weight (percent) and example texts (`{order}` is replaced by an order
/// number).
struct Category {
    name: &'static str,
    weight: u32,
    zh: &'static [&'static str],
    en: &'static [&'static str],
}

const CATEGORIES: &[Category] = &[
    Category {
        name: "order_status",
        weight: 22,
        zh: &[
            "我的订单{order}到哪了",
            "订单{order}发货了吗",
            "帮我查一下订单{order}",
        ],
        en: &[
            "where is my order {order}?",
            "has order {order} shipped yet?",
            "status of order {order} please",
        ],
    },
    Category {
        name: "logistics",
        weight: 14,
        zh: &[
            "快递怎么还没到，都三天了",
            "物流一直没更新",
            "包裹什么时候能到",
        ],
        en: &[
            "my parcel is late, it has been three days",
            "tracking hasn't updated for days",
            "when will my package arrive?",
        ],
    },
    Category {
        name: "returns",
        weight: 10,
        zh: &[
            "我要退货，尺码不合适",
            "怎么申请换货",
            "收到的商品有破损，想退",
        ],
        en: &[
            "I want to return this, wrong size",
            "how do I exchange an item?",
            "the item arrived damaged, I want to return it",
        ],
    },
    Category {
        name: "refund",
        weight: 6,
        zh: &["退款什么时候到账", "我的退款怎么还没收到"],
        en: &[
            "when will I get my refund?",
            "I still haven't received my refund",
        ],
    },
    Category {
        name: "coupon",
        weight: 8,
        zh: &[
            "优惠券怎么用不了",
            "满减活动怎么参加",
            "双十一的券可以叠加吗",
        ],
        en: &[
            "why can't I use my coupon?",
            "can I combine two coupons?",
            "how do I get the discount?",
        ],
    },
    Category {
        name: "presale",
        weight: 6,
        zh: &["预售定金可以退吗", "尾款什么时候付", "预售商品什么时候发货"],
        en: &[
            "is the presale deposit refundable?",
            "when do I pay the balance for the presale?",
        ],
    },
    Category {
        name: "payment",
        weight: 6,
        zh: &["付款失败了怎么办", "扣了两次钱", "可以用花呗分期吗"],
        en: &[
            "my payment failed, what should I do?",
            "I was charged twice",
            "can I pay in installments?",
        ],
    },
    Category {
        name: "product",
        weight: 8,
        zh: &["这件有M码吗", "这个是纯棉的吗", "有没有黑色"],
        en: &[
            "does this come in size M?",
            "is this jacket waterproof?",
            "what colours does it come in?",
        ],
    },
    Category {
        name: "cancel_change",
        weight: 6,
        zh: &["订单{order}可以取消吗", "我想改一下收货地址"],
        en: &[
            "please cancel order {order}",
            "can I change my delivery address?",
        ],
    },
    Category {
        name: "human",
        weight: 4,
        zh: &["转人工", "我要找客服", "人工客服在吗"],
        en: &[
            "I want to talk to a person",
            "agent please",
            "connect me to a human",
        ],
    },
    Category {
        name: "chit_chat",
        weight: 10,
        zh: &["你好", "在吗", "谢谢", "好的谢谢"],
        en: &["hello", "hi there", "thanks!", "thank you, bye"],
    },
];

/// Channels and their share of traffic.
const CHANNELS: &[(&str, u32)] = &[("wechat", 40), ("taobao", 30), ("web", 20), ("douyin", 10)];

/// One generated customer message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub category: &'static str,
    pub language: &'static str,
    pub channel: &'static str,
    pub text: String,
}

fn weighted<'a, T>(rng: &mut impl Rng, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
    let total: u32 = items.iter().map(&weight).sum();
    let mut x = rng.random_range(0..total);
    for it in items {
        let w = weight(it);
        if x < w {
            return it;
        }
        x -= w;
    }
    items.last().expect("non-empty")
}

/// A message of the mix: 70% Chinese, 30% English.
pub fn message(rng: &mut impl Rng) -> Message {
    let c = weighted(rng, CATEGORIES, |c| c.weight);
    let zh = rng.random_bool(0.7);
    let texts = if zh { c.zh } else { c.en };
    let template = texts.choose(rng).expect("texts");
    let order = format!("2026111{:05}", rng.random_range(0..100_000));
    let (channel, _) = weighted(rng, CHANNELS, |(_, w)| *w);
    Message {
        category: c.name,
        language: if zh { "zh" } else { "en" },
        channel,
        text: template.replace("{order}", &order),
    }
}

/// Category weights, in percent (they sum to 100; loadtest/k6/lib.js repeats them).
pub fn weights() -> Vec<(&'static str, u32)> {
    CATEGORIES.iter().map(|c| (c.name, c.weight)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn the_mix_follows_its_weights() {
        assert_eq!(weights().iter().map(|(_, w)| w).sum::<u32>(), 100);
        let mut rng = StdRng::seed_from_u64(7);
        let n = 20_000;
        let mut orders = 0;
        let mut zh = 0;
        for _ in 0..n {
            let m = message(&mut rng);
            assert!(!m.text.contains("{order}"));
            orders += (m.category == "order_status") as u32;
            zh += (m.language == "zh") as u32;
        }
        let share = orders as f64 / n as f64;
        assert!((share - 0.22).abs() < 0.02, "order_status share {share}");
        let zh_share = zh as f64 / n as f64;
        assert!((zh_share - 0.7).abs() < 0.02, "zh share {zh_share}");
    }
}
