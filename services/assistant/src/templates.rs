//! What the assistant says in its own words, in English and Chinese. None of it is a shop's
//! fact: a policy, a price, a date or an amount comes from the shop's knowledge or orders
//! (the knowledge service, order-sync), and when neither answers, a person does.

pub struct Answer {
    pub text: String,
    pub language: &'static str,
}

/// The assistant's own reply for `intent` when the shop's knowledge and orders had none:
/// greetings, and asking for the order number of an order question. `None`: a person answers.
pub fn answer(intent: &str, language: &str) -> Option<Answer> {
    let zh = language == "zh";
    let (en, cn) = match intent {
        "greeting" => (
            "Hello! I'm the shop's assistant. Ask me about your order, our products or our policies.",
            "您好！我是店铺智能客服，订单、商品和店铺规则都可以问我。",
        ),
        "thanks_goodbye" => (
            "You're welcome! Anything else, just message us here.",
            "不客气！还有其他问题随时留言给我们。",
        ),
        "order_status" | "shipping_delay" | "delivery_info" | "cancel_order" | "change_address"
        | "change_order" | "refund" => (
            "I can check that for you. Please send your order number (you'll find it under My Orders).",
            "我来帮您查询，请发送您的订单号（可在“我的订单”中找到）。",
        ),
        _ => return None,
    };
    Some(Answer {
        text: if zh { cn } else { en }.to_owned(),
        language: if zh { "zh" } else { "en" },
    })
}

/// What a customer is told when a person will answer (the ticket's acknowledgement says the
/// same on the message path).
pub fn handover(zh: bool) -> &'static str {
    if zh {
        "这个问题我需要请同事确认，稍后会有人工客服在这里回复您。"
    } else {
        "I want to get this right, so a colleague will answer you here shortly."
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_greetings_and_order_number_requests_are_the_assistants_own() {
        let a = answer("greeting", "zh").expect("greeting");
        assert_eq!(a.language, "zh");
        assert!(
            answer("order_status", "en")
                .expect("ask")
                .text
                .contains("order number")
        );
        for intent in [
            "return_exchange",
            "payment_methods",
            "coupon_promotion",
            "presale_deposit",
            "something_new",
        ] {
            assert!(
                answer(intent, "en").is_none(),
                "{intent}: a shop fact is never the assistant's"
            );
        }
    }

    #[test]
    fn no_number_in_the_assistants_own_words() {
        for intent in ["greeting", "thanks_goodbye", "order_status"] {
            for lang in ["en", "zh"] {
                let t = answer(intent, lang).expect("text").text;
                assert!(!t.chars().any(|c| c.is_ascii_digit()), "{t}");
            }
        }
    }
}
