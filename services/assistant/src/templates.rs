//! Answer templates per intent, in English and Chinese.

pub struct Answer {
    pub text: String,
    pub language: &'static str,
    /// The template cannot really help; a human should follow up.
    pub escalate: bool,
}

/// The answer for `intent` in `language` (Chinese for `zh`, English otherwise).
pub fn answer(intent: &str, language: &str) -> Answer {
    let zh = language == "zh";
    let (en, cn, escalate) = match intent {
        "greeting" => (
            "Hello! I'm the shop assistant. Ask me about your order, delivery, returns, coupons or payments.",
            "您好！我是店铺智能客服，订单、物流、退换货、优惠券和支付问题都可以问我。",
            false,
        ),
        "thanks_goodbye" => (
            "You're welcome! Anything else, just message us here.",
            "不客气！还有其他问题随时留言给我们。",
            false,
        ),
        "order_status" => (
            "I can check that for you. Please send your order number (you'll find it under My Orders).",
            "我来帮您查询，请发送您的订单号（可在“我的订单”中找到）。",
            false,
        ),
        "shipping_delay" => (
            "Sorry for the wait. Please send your order or tracking number and I'll chase the courier for you.",
            "抱歉让您久等了。请发送订单号或运单号，我马上帮您催促快递。",
            false,
        ),
        "delivery_info" => (
            "Orders ship within 48 hours of payment and usually arrive in 2-5 days; shipping is free over 99.",
            "订单付款后48小时内发货，一般2-5天送达，满99元包邮。",
            false,
        ),
        "return_exchange" => (
            "You can return or exchange unused items within 7 days of delivery: open the order and choose Return/Exchange.",
            "签收后7天内未使用的商品支持退换货：进入订单选择“退货/换货”即可。",
            false,
        ),
        "refund" => (
            "Refunds go back to the original payment method within 3 business days after we receive the return.",
            "我们收到退货后3个工作日内原路退款。",
            false,
        ),
        "cancel_order" => (
            "Orders that have not shipped can be cancelled under My Orders → Cancel; the refund is automatic.",
            "未发货的订单可以在“我的订单”中直接取消，款项会自动原路退回。",
            false,
        ),
        "change_order" => (
            "Before shipping you can change size, colour or quantity by cancelling and re-ordering; tell me the order number and I'll help.",
            "发货前可以修改规格或数量，请告诉我订单号，我来帮您处理。",
            false,
        ),
        "change_address" => (
            "Before the order ships you can change the address under My Orders → Modify address. Send me the order number if it's greyed out.",
            "发货前可以在“我的订单”中修改收货地址；如无法修改，请发订单号给我。",
            false,
        ),
        "coupon_promotion" => (
            "Coupons apply automatically at checkout when the order qualifies; store and platform coupons can be combined.",
            "满足条件的优惠券会在结算时自动使用，店铺券和平台券可以叠加。",
            false,
        ),
        "presale_deposit" => (
            "For presale items, pay the deposit now and the balance when the final payment opens; the deposit is refundable only if the presale is cancelled by us.",
            "预售商品先付定金，尾款开放后再付尾款；定金仅在商家取消预售时退还。",
            false,
        ),
        "payment_problem" => (
            "If a payment failed or you were charged twice, the duplicate is refunded to the original account within 1-3 business days.",
            "如果支付失败或重复扣款，多扣的款项会在1-3个工作日内原路退回。",
            false,
        ),
        "payment_methods" => (
            "We accept Alipay, WeChat Pay, UnionPay and major credit cards; instalments are available at checkout.",
            "支持支付宝、微信支付、银联和主流信用卡，结算时可选择分期。",
            false,
        ),
        "invoice" => (
            "You can request an electronic invoice under My Orders → Invoice after delivery.",
            "签收后可以在“我的订单”→“发票”中申请电子发票。",
            false,
        ),
        "product_inquiry" => (
            "Size charts, colours and materials are on the product page under Details. Tell me the product and I'll help further.",
            "尺码表、颜色和材质都在商品详情页中。告诉我是哪件商品，我可以进一步帮您。",
            false,
        ),
        "place_order" => (
            "Add the item to your cart and check out; for bulk orders tell me the quantity and I'll help.",
            "加入购物车后结算即可下单；批量采购请告诉我数量。",
            false,
        ),
        "account" => (
            "You can reset your password or change your phone number under Me → Settings → Account security.",
            "可以在“我的”→“设置”→“账号安全”中重置密码或更换手机号。",
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
        let a = answer("return_exchange", "zh");
        assert_eq!(a.language, "zh");
        assert!(a.text.contains("退"));
        let a = answer("return_exchange", "en");
        assert!(a.text.contains("return"));
        assert!(answer("something_new", "en").escalate);
    }
}
