//! Intent models.
use crate::entities::{self, Found};

/// Intent labels the mesh understands.
pub mod intents {
    pub const ORDER_STATUS: &str = "order_status";
    pub const LOGISTICS: &str = "logistics";
    pub const RETURN_EXCHANGE: &str = "return_exchange";
    pub const COUPON_PROMOTION: &str = "coupon_promotion";
    pub const PAYMENT: &str = "payment";
    pub const PRODUCT_QUESTION: &str = "product_question";
    pub const HUMAN_AGENT: &str = "human_agent";
    pub const GREETING: &str = "greeting";
    pub const OTHER: &str = "other";
}

/// One prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub intent: &'static str,
    pub confidence: f32,
    pub entities: Vec<Found>,
}

/// A model that maps text to an intent.
pub trait Classifier: Send + Sync {
    fn name(&self) -> &'static str;
    fn classify(&self, text: &str, language: &str) -> Prediction;
}

/// Weighted keyword model for English and Chinese: each intent has cue phrases; the intent
/// with the highest total weight wins, and confidence grows with the margin over the runner-up.
pub struct KeywordModel {
    cues: Vec<(&'static str, Vec<(&'static str, f32)>)>,
}

impl Default for KeywordModel {
    fn default() -> Self {
        Self::new()
    }
}

impl KeywordModel {
    pub fn new() -> Self {
        use intents::*;
        let cues = vec![
            (
                HUMAN_AGENT,
                vec![
                    ("human", 2.0),
                    ("real person", 2.5),
                    ("agent", 1.5),
                    ("speak to someone", 2.5),
                    ("talk to someone", 2.5),
                    ("representative", 2.0),
                    ("人工", 3.0),
                    ("转人工", 3.0),
                    ("真人", 2.5),
                    ("客服", 1.0),
                    ("投诉", 2.0),
                    ("complain", 2.0),
                ],
            ),
            (
                ORDER_STATUS,
                vec![
                    ("order status", 2.5),
                    ("my order", 1.5),
                    ("order", 1.0),
                    ("订单", 2.0),
                    ("下单", 1.0),
                    ("order number", 1.0),
                    ("cancel", 1.0),
                    ("取消订单", 2.0),
                ],
            ),
            (
                LOGISTICS,
                vec![
                    ("shipping", 2.0),
                    ("shipped", 2.0),
                    ("delivery", 2.0),
                    ("deliver", 1.5),
                    ("tracking", 2.5),
                    ("package", 1.5),
                    ("parcel", 2.0),
                    ("arrive", 1.5),
                    ("courier", 2.0),
                    ("物流", 3.0),
                    ("快递", 3.0),
                    ("发货", 3.0),
                    ("到货", 2.5),
                    ("送达", 2.5),
                    ("运单", 2.5),
                    ("where is my", 1.0),
                ],
            ),
            (
                RETURN_EXCHANGE,
                vec![
                    ("return", 2.5),
                    ("refund", 2.5),
                    ("exchange", 2.5),
                    ("money back", 2.5),
                    ("退货", 3.0),
                    ("退款", 3.0),
                    ("换货", 3.0),
                    ("售后", 2.0),
                    ("broken", 1.5),
                    ("damaged", 1.5),
                    ("wrong item", 2.0),
                ],
            ),
            (
                COUPON_PROMOTION,
                vec![
                    ("coupon", 3.0),
                    ("discount", 2.5),
                    ("promo", 2.5),
                    ("presale", 3.0),
                    ("pre-sale", 3.0),
                    ("deposit", 1.5),
                    ("voucher", 2.5),
                    ("优惠券", 3.0),
                    ("满减", 3.0),
                    ("预售", 3.0),
                    ("定金", 2.5),
                    ("活动", 1.5),
                    ("红包", 2.0),
                    ("double 11", 1.5),
                    ("双11", 1.5),
                    ("618", 1.0),
                ],
            ),
            (
                PAYMENT,
                vec![
                    ("payment", 3.0),
                    ("pay ", 1.5),
                    ("paid", 1.5),
                    ("charged", 2.5),
                    ("card", 1.0),
                    ("alipay", 2.5),
                    ("wechat pay", 2.5),
                    ("付款", 3.0),
                    ("支付", 3.0),
                    ("扣款", 3.0),
                    ("扣钱", 2.5),
                    ("invoice", 1.5),
                    ("发票", 2.0),
                ],
            ),
            (
                PRODUCT_QUESTION,
                vec![
                    ("size", 2.0),
                    ("colour", 2.0),
                    ("color", 2.0),
                    ("material", 2.0),
                    ("in stock", 2.5),
                    ("stock", 1.5),
                    ("fit", 1.0),
                    ("尺码", 3.0),
                    ("颜色", 3.0),
                    ("材质", 3.0),
                    ("有货", 3.0),
                    ("库存", 2.5),
                    ("多大", 2.0),
                    ("质量", 2.0),
                ],
            ),
            (
                GREETING,
                vec![
                    ("hello", 2.0),
                    ("hi", 1.0),
                    ("hey", 1.5),
                    ("good morning", 2.0),
                    ("你好", 2.0),
                    ("您好", 2.0),
                    ("在吗", 2.0),
                    ("在不在", 2.0),
                    ("thanks", 1.0),
                    ("thank you", 1.0),
                    ("谢谢", 1.0),
                ],
            ),
        ];
        Self { cues }
    }
}

fn contains_word(haystack: &str, needle: &str) -> bool {
    if !needle.is_ascii() {
        return haystack.contains(needle);
    }
    // ASCII cues match on word boundaries ("hi" must not match "shipping").
    haystack.match_indices(needle).any(|(i, _)| {
        let before = haystack[..i].chars().next_back();
        let after = haystack[i + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

impl Classifier for KeywordModel {
    fn name(&self) -> &'static str {
        "kefu-keywords-v0"
    }

    fn classify(&self, text: &str, _language: &str) -> Prediction {
        let lower = format!("{} ", text.to_lowercase());
        let mut scores: Vec<(&'static str, f32)> = self
            .cues
            .iter()
            .map(|(intent, cues)| {
                let s = cues
                    .iter()
                    .filter(|(cue, _)| contains_word(&lower, cue.trim_end()))
                    .map(|(_, w)| w)
                    .sum();
                (*intent, s)
            })
            .collect();
        scores.sort_by(|a, b| b.1.total_cmp(&a.1));
        let found = entities::extract(text);
        let (mut intent, best) = scores[0];
        let second = scores[1].1;
        let mut confidence = if best <= 0.0 {
            0.3
        } else {
            (0.55 + 0.1 * best + 0.1 * (best - second)).min(0.97)
        };
        if best <= 0.0 {
            intent = intents::OTHER;
            // An order or tracking number alone is most likely a status question.
            if found.iter().any(|e| e.kind == "tracking_number") {
                intent = intents::LOGISTICS;
                confidence = 0.6;
            } else if found.iter().any(|e| e.kind == "order_id") {
                intent = intents::ORDER_STATUS;
                confidence = 0.6;
            }
        }
        Prediction {
            intent,
            confidence,
            entities: found,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_typical_messages() {
        let m = KeywordModel::new();
        let cases = [
            (
                "Where is my parcel? The tracking hasn't moved",
                intents::LOGISTICS,
            ),
            ("我要退货退款", intents::RETURN_EXCHANGE),
            ("转人工", intents::HUMAN_AGENT),
            ("I want to talk to a real person", intents::HUMAN_AGENT),
            ("有优惠券吗？预售定金怎么算", intents::COUPON_PROMOTION),
            ("hello", intents::GREETING),
            ("I was charged twice for my payment", intents::PAYMENT),
            (
                "这件衣服有M码吗，颜色和材质是什么",
                intents::PRODUCT_QUESTION,
            ),
            (
                "What is the status of order 202611110001?",
                intents::ORDER_STATUS,
            ),
            ("the weather is nice", intents::OTHER),
        ];
        for (text, want) in cases {
            let p = m.classify(text, "");
            assert_eq!(p.intent, want, "{text}: {p:?}");
            assert!((0.0..=1.0).contains(&p.confidence));
        }
    }

    #[test]
    fn unknown_text_has_low_confidence() {
        let p = KeywordModel::new().classify("lorem ipsum", "en");
        assert_eq!(p.intent, intents::OTHER);
        assert!(p.confidence < 0.5);
        assert!(!contains_word("shipping", "hi"));
    }
}
