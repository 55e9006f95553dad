//! Answer templates per intent, in English and Chinese.
use kefu_proto::order::v1::Order;

pub struct Answer {
    pub text: String,
    pub language: &'static str,
    /// The template cannot really help; a human should follow up.
    pub escalate: bool,
}

fn status_text(status: &str, zh: bool) -> &str {
    match (status, zh) {
        ("pending_payment", false) => "waiting for payment",
        ("pending_payment", true) => "待付款",
        ("paid", false) => "paid and being prepared",
        ("paid", true) => "已付款，正在备货",
        ("shipped", false) => "shipped",
        ("shipped", true) => "已发货",
        ("delivered", false) => "delivered",
        ("delivered", true) => "已签收",
        ("cancelled", false) => "cancelled",
        ("cancelled", true) => "已取消",
        ("refunded", false) => "refunded",
        ("refunded", true) => "已退款",
        (other, _) => other,
    }
}

/// The answer for `intent` in `language` (Chinese for `zh`, English otherwise).
pub fn answer(intent: &str, language: &str, order: Option<&Order>) -> Answer {
    let zh = language == "zh";
    if let Some(o) = order {
        let status = status_text(&o.status, zh);
        let text = match (zh, o.tracking_number.is_empty()) {
            (true, true) => format!("您的订单 {} 当前状态：{}。", o.order_id, status),
            (true, false) => format!(
                "您的订单 {} 当前状态：{}，{} 运单号 {}。",
                o.order_id, status, o.carrier, o.tracking_number
            ),
            (false, true) => format!("Your order {} is {}.", o.order_id, status),
            (false, false) => format!(
                "Your order {} is {}; {} tracking number {}.",
                o.order_id, status, o.carrier, o.tracking_number
            ),
        };
        return Answer {
            text,
            language: if zh { "zh" } else { "en" },
            escalate: false,
        };
    }
    let (en, cn, escalate) = match intent {
        "greeting" => (
            "Hello! I'm the shop assistant. Ask me about your order, delivery, returns, coupons or payments.",
            "您好！我是店铺智能客服，订单、物流、退换货、优惠券和支付问题都可以问我。",
            false,
        ),
        "order_status" => (
            "I can check that for you. Please send your order number (you'll find it under My Orders).",
            "我来帮您查询，请发送您的订单号（可在“我的订单”中找到）。",
            false,
        ),
        "logistics" => (
            "Orders ship within 48 hours of payment. Send your order or tracking number and I'll look up where your parcel is.",
            "订单付款后48小时内发货。请发送订单号或运单号，我帮您查询物流进度。",
            false,
        ),
        "return_exchange" => (
            "You can return or exchange unused items within 7 days of delivery: open the order, choose Return/Exchange, and we refund within 3 days of receiving it.",
            "签收后7天内未使用的商品支持退换货：进入订单选择“退货/换货”，我们收到商品后3天内退款。",
            false,
        ),
        "coupon_promotion" => (
            "Coupons apply automatically at checkout when the order qualifies. For presale items, pay the deposit now and the balance when the final payment opens.",
            "满足条件的优惠券会在结算时自动使用。预售商品先付定金，尾款开放后再付尾款。",
            false,
        ),
        "payment" => (
            "If a payment failed or you were charged twice, the duplicate is refunded to the original account within 1-3 business days.",
            "如果支付失败或重复扣款，多扣的款项会在1-3个工作日内原路退回。",
            false,
        ),
        "product_question" => (
            "Size charts, colours and materials are on the product page under Details. Tell me the product and I'll help further.",
            "尺码表、颜色和材质都在商品详情页中。告诉我是哪件商品，我可以进一步帮您。",
            false,
        ),
        _ => (
            "Thanks for your message. A colleague will follow up if I can't help with this one.",
            "感谢您的留言，如我无法解答，会有同事跟进。",
            true,
        ),
    };
    Answer {
        text: if zh { cn } else { en }.to_owned(),
        language: if zh { "zh" } else { "en" },
        escalate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_in_the_customers_language() {
        let a = answer("return_exchange", "zh", None);
        assert_eq!(a.language, "zh");
        assert!(a.text.contains("退"));
        let a = answer("return_exchange", "en", None);
        assert!(a.text.contains("return"));
        assert!(answer("something_new", "en", None).escalate);
    }

    #[test]
    fn uses_order_data() {
        let o = Order {
            order_id: "123456789".into(),
            status: "shipped".into(),
            carrier: "SF".into(),
            tracking_number: "SF1234567890".into(),
            ..Default::default()
        };
        let a = answer("order_status", "en", Some(&o));
        assert_eq!(
            a.text,
            "Your order 123456789 is shipped; SF tracking number SF1234567890."
        );
    }
}
