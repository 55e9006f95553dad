//! Answers from the customer's real orders: which order the question is about, and what to
//! say about it (status, latest tracking event, eligibility to cancel or change), in Chinese
//! or English. Pure functions; the pipeline does the lookups.
use chrono::{DateTime, Utc};
use kefu_proto::order::v1::{Order, Shipment, TrackingEvent};

/// Intents answered from order data.
pub const ORDER_INTENTS: &[&str] = &[
    "order_status",
    "shipping_delay",
    "delivery_info",
    "cancel_order",
    "change_address",
    "change_order",
    "refund",
];

/// A parcel with no scan for this long while in transit counts as late.
pub const STALE_HOURS: i64 = 72;

/// What to do with an order question.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Reply with this text.
    Reply(String),
    /// The bot cannot act: hand over to a person, with this order attached.
    Handover { reason: String, order_id: String },
}

fn ts(t: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.as_ref()
        .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

fn when(t: &Option<prost_types::Timestamp>) -> String {
    ts(t)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

pub fn status_text(status: &str, zh: bool) -> &str {
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

fn scan_text(status: &str, zh: bool) -> &str {
    match (status, zh) {
        ("label_created", false) => "label created",
        ("label_created", true) => "已揽件前（面单已生成）",
        ("picked_up", false) => "picked up",
        ("picked_up", true) => "已揽收",
        ("in_transit", false) => "in transit",
        ("in_transit", true) => "运输中",
        ("out_for_delivery", false) => "out for delivery",
        ("out_for_delivery", true) => "派送中",
        ("delivered", false) => "delivered",
        ("delivered", true) => "已签收",
        ("exception", false) => "delivery problem",
        ("exception", true) => "配送异常",
        ("returned", false) => "returned to sender",
        ("returned", true) => "已退回",
        (other, _) => other,
    }
}

fn return_text(status: &str, zh: bool) -> &str {
    match (status, zh) {
        ("requested", false) => "requested, waiting for review",
        ("requested", true) => "已申请，等待审核",
        ("approved", false) => "approved; please send the item back",
        ("approved", true) => "已同意，请寄回商品",
        ("rejected", false) => "rejected",
        ("rejected", true) => "未通过",
        ("received", false) => "item received, refund in progress",
        ("received", true) => "已收到退货，退款处理中",
        ("refunded", false) => "refunded",
        ("refunded", true) => "已退款",
        (other, _) => other,
    }
}

fn money(minor: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", minor / 100, minor % 100)
}

/// "1001 (Green tea)" — how an order is named to the customer.
fn label(o: &Order) -> String {
    match o.items.first() {
        Some(i) if !i.title.is_empty() => format!("{}（{}）", o.order_id, i.title),
        _ => o.order_id.clone(),
    }
}

fn label_en(o: &Order) -> String {
    match o.items.first() {
        Some(i) if !i.title.is_empty() => format!("{} ({})", o.order_id, i.title),
        _ => o.order_id.clone(),
    }
}

/// The parcel with the newest scan, and that scan.
fn latest(o: &Order) -> Option<(&Shipment, Option<&TrackingEvent>)> {
    o.shipments
        .iter()
        .map(|s| (s, s.events.first()))
        .max_by_key(|(_, e)| e.and_then(|e| ts(&e.at)))
}

fn is_open(o: &Order) -> bool {
    matches!(o.status.as_str(), "pending_payment" | "paid" | "shipped")
}

/// Late: a delivery problem, past the promised date, or no scan for [`STALE_HOURS`].
pub fn is_late(o: &Order, now: DateTime<Utc>) -> bool {
    if o.status != "shipped" {
        return false;
    }
    let Some((s, e)) = latest(o) else {
        return false;
    };
    let last = e.and_then(|e| ts(&e.at));
    e.is_some_and(|e| e.status == "exception")
        || ts(&s.estimated_delivery).is_some_and(|eta| eta < now)
        || last.is_some_and(|t| now - t > chrono::Duration::hours(STALE_HOURS))
}

/// Which of the customer's orders (most recent first) a question without an order number is
/// about: `Ok(Some)` one, `Ok(None)` none, `Err(list)` several (ask which).
pub fn choose<'a>(intent: &str, orders: &'a [Order]) -> Result<Option<&'a Order>, Vec<&'a Order>> {
    let candidates: Vec<&Order> = if intent == "refund" {
        orders
            .iter()
            .filter(|o| !o.returns.is_empty() || o.status == "refunded")
            .collect()
    } else {
        orders.iter().filter(|o| is_open(o)).collect()
    };
    match candidates.len() {
        0 => Ok(orders.first()),
        1 => Ok(Some(candidates[0])),
        _ => Err(candidates),
    }
}

/// "Which one?" when several orders fit.
pub fn ask_which(orders: &[&Order], zh: bool) -> String {
    let shown: Vec<&&Order> = orders.iter().take(5).collect();
    if zh {
        let list: Vec<String> = shown
            .iter()
            .map(|o| format!("{}，{}", label(o), status_text(&o.status, true)))
            .collect();
        format!(
            "您有 {} 个相关订单：{}。请问您问的是哪一个？请回复订单号。",
            orders.len(),
            list.join("；")
        )
    } else {
        let list: Vec<String> = shown
            .iter()
            .map(|o| format!("{}, {}", label_en(o), status_text(&o.status, false)))
            .collect();
        format!(
            "You have {} matching orders: {}. Which one do you mean? Please reply with the order number.",
            orders.len(),
            list.join("; ")
        )
    }
}

/// A named order the customer has no access to (or that does not exist): say nothing of it.
pub fn not_found(order_id: &str, zh: bool) -> String {
    if zh {
        format!("没有在您的账户下找到订单 {order_id}，请核对订单号后再发给我。")
    } else {
        format!(
            "I couldn't find order {order_id} on your account. Please check the number and send it again."
        )
    }
}

fn tracking_line(o: &Order, zh: bool) -> String {
    let Some((s, e)) = latest(o) else {
        return String::new();
    };
    let carrier = if s.carrier.is_empty() {
        String::new()
    } else {
        format!("{} ", s.carrier)
    };
    let eta = ts(&s.estimated_delivery);
    let eta_text = |zh: bool| match (eta, o.status.as_str()) {
        (Some(_), "shipped") if zh => format!("预计送达：{}。", when(&s.estimated_delivery)),
        (Some(_), "shipped") => format!(" Expected delivery: {}.", when(&s.estimated_delivery)),
        _ => String::new(),
    };
    match (e, zh) {
        (Some(e), true) => {
            let place = if e.location.is_empty() {
                String::new()
            } else {
                format!("{} ", e.location)
            };
            format!(
                "最新物流（{carrier}{}）：{} {place}{}。{}",
                s.tracking_number,
                when(&e.at),
                scan_text(&e.status, true),
                eta_text(true)
            )
        }
        (Some(e), false) => {
            let place = if e.location.is_empty() {
                String::new()
            } else {
                format!(" at {}", e.location)
            };
            format!(
                " Latest tracking ({carrier}{}): {} on {}{place}.{}",
                s.tracking_number,
                scan_text(&e.status, false),
                when(&e.at),
                eta_text(false)
            )
        }
        (None, true) => format!("运单号：{carrier}{}，暂无物流更新。", s.tracking_number),
        (None, false) => format!(
            " Tracking number {carrier}{}, no scans yet.",
            s.tracking_number
        ),
    }
}

fn latest_return(o: &Order) -> Option<&kefu_proto::order::v1::Return> {
    o.returns
        .iter()
        .max_by_key(|r| r.updated_at.as_ref().map(|t| (t.seconds, t.nanos)))
}

fn return_line(o: &Order, zh: bool) -> String {
    match (latest_return(o), zh) {
        (None, _) => String::new(),
        (Some(r), true) => format!(
            "退货退款（{}）：{}，金额 {}。",
            r.return_id,
            return_text(&r.status, true),
            money(r.refund_minor, &o.currency)
        ),
        (Some(r), false) => format!(
            " Return {}: {} ({}).",
            r.return_id,
            return_text(&r.status, false),
            money(r.refund_minor, &o.currency)
        ),
    }
}

fn status_sentence(o: &Order, zh: bool) -> String {
    if zh {
        format!(
            "您的订单 {} 当前状态：{}。{}{}",
            label(o),
            status_text(&o.status, true),
            tracking_line(o, true),
            return_line(o, true)
        )
    } else {
        format!(
            "Your order {} is {}.{}{}",
            label_en(o),
            status_text(&o.status, false),
            tracking_line(o, false),
            return_line(o, false)
        )
    }
}

/// The answer about one order the customer owns.
pub fn plan(intent: &str, o: &Order, zh: bool, now: DateTime<Utc>) -> Plan {
    let status = status_sentence(o, zh);
    let handover = |reason: &str| Plan::Handover {
        reason: reason.to_owned(),
        order_id: o.order_id.clone(),
    };
    let not_shipped = matches!(o.status.as_str(), "pending_payment" | "paid");
    match intent {
        "shipping_delay" | "order_status" | "delivery_info" if is_late(o, now) => {
            Plan::Reply(if zh {
                format!(
                    "{status}非常抱歉，包裹比预期慢了。回复“人工”，客服会为您联系快递加急处理。"
                )
            } else {
                format!(
                    "{status} I'm sorry, this parcel is running late. Reply \"agent\" and a colleague will chase the carrier for you."
                )
            })
        }
        "cancel_order" => match o.status.as_str() {
            _ if not_shipped => Plan::Reply(if zh {
                format!(
                    "{status}订单尚未发货，可以取消：在“我的订单”中点击“取消订单”，款项会原路退回。"
                )
            } else {
                format!(
                    "{status} It hasn't shipped yet, so you can cancel it under My Orders → Cancel; the payment is refunded automatically."
                )
            }),
            "shipped" => {
                handover("order already shipped: cancellation needs the parcel intercepted")
            }
            "delivered" => Plan::Reply(if zh {
                format!("{status}订单已签收，无法取消；想退货的话，可以问我本店的退货规则。")
            } else {
                format!(
                    "{status} It has been delivered, so it can't be cancelled; ask me about the shop's return policy if you want to send it back."
                )
            }),
            _ => Plan::Reply(status),
        },
        "change_address" | "change_order" => match o.status.as_str() {
            _ if not_shipped => Plan::Reply(if zh {
                format!(
                    "{status}订单尚未发货，可以在“我的订单”中修改收货地址或规格；如果按钮是灰色的，请告诉我新的信息。"
                )
            } else {
                format!(
                    "{status} It hasn't shipped yet, so you can still change it under My Orders → Modify."
                )
            }),
            "shipped" => handover("order already shipped: the change needs the carrier"),
            _ => Plan::Reply(if zh {
                format!("{status}该订单已无法修改。")
            } else {
                format!("{status} This order can no longer be changed.")
            }),
        },
        "refund" => Plan::Reply(match (latest_return(o), zh) {
            (Some(r), true) => format!(
                "订单 {} 的退款申请（{}）：{}，退款金额 {}。",
                label(o),
                r.return_id,
                return_text(&r.status, true),
                money(r.refund_minor, &o.currency)
            ),
            (Some(r), false) => format!(
                "The refund for order {} (return {}) is {}; amount {}.",
                label_en(o),
                r.return_id,
                return_text(&r.status, false),
                money(r.refund_minor, &o.currency)
            ),
            (None, true) if o.status == "refunded" => format!(
                "订单 {} 已退款 {}，款项已原路退回。",
                label(o),
                money(o.total_minor, &o.currency)
            ),
            (None, false) if o.status == "refunded" => format!(
                "Order {} has been refunded ({}) to the original payment method.",
                label_en(o),
                money(o.total_minor, &o.currency)
            ),
            (None, true) => {
                format!("{status}该订单没有退款申请；想退货退款的话，可以问我本店的退货规则。")
            }
            (None, false) => format!(
                "{status} There is no refund request on it; ask me about the shop's return policy if you want to return it."
            ),
        }),
        _ => Plan::Reply(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_proto::order::v1::{LineItem, Return};

    fn t(s: &str) -> Option<prost_types::Timestamp> {
        let d = DateTime::parse_from_rfc3339(s).unwrap();
        Some(kefu_runtime::event::timestamp(d.with_timezone(&Utc)))
    }

    fn order(id: &str, status: &str) -> Order {
        Order {
            shop_id: "s".into(),
            order_id: id.into(),
            status: status.into(),
            currency: "CNY".into(),
            total_minor: 19900,
            items: vec![LineItem {
                title: "Tea".into(),
                quantity: 1,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn shipped(id: &str, scan_at: &str, scan: &str) -> Order {
        let mut o = order(id, "shipped");
        o.shipments = vec![Shipment {
            carrier: "SF".into(),
            tracking_number: "SF1234567890123".into(),
            events: vec![TrackingEvent {
                status: scan.into(),
                location: "Shanghai".into(),
                description: String::new(),
                at: t(scan_at),
            }],
            ..Default::default()
        }];
        o
    }

    #[test]
    fn status_and_latest_scan_in_both_languages() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .unwrap()
            .to_utc();
        let o = shipped("1001", "2026-11-24T08:00:00Z", "in_transit");
        let Plan::Reply(zh) = plan("order_status", &o, true, now) else {
            panic!()
        };
        assert!(
            zh.contains("已发货") && zh.contains("运输中") && zh.contains("Shanghai"),
            "{zh}"
        );
        let Plan::Reply(en) = plan("order_status", &o, false, now) else {
            panic!()
        };
        assert!(
            en.contains("shipped") && en.contains("in transit on 2026-11-24 08:00 UTC"),
            "{en}"
        );
        assert!(!is_late(&o, now));
        let stale = shipped("1002", "2026-11-19T08:00:00Z", "in_transit");
        assert!(is_late(&stale, now));
        let Plan::Reply(late) = plan("shipping_delay", &stale, false, now) else {
            panic!()
        };
        assert!(late.contains("running late"), "{late}");
    }

    #[test]
    fn eligibility_by_state() {
        let now = Utc::now();
        assert!(
            matches!(plan("cancel_order", &order("1", "paid"), true, now), Plan::Reply(t) if t.contains("可以取消"))
        );
        assert_eq!(
            plan(
                "cancel_order",
                &shipped("2", "2026-11-24T08:00:00Z", "in_transit"),
                false,
                now
            ),
            Plan::Handover {
                reason: "order already shipped: cancellation needs the parcel intercepted".into(),
                order_id: "2".into()
            }
        );
        assert!(
            matches!(plan("change_address", &order("3", "delivered"), false, now), Plan::Reply(t) if t.contains("no longer"))
        );
        let mut r = order("4", "delivered");
        r.returns = vec![Return {
            return_id: "R1".into(),
            status: "received".into(),
            refund_minor: 9900,
            ..Default::default()
        }];
        assert!(
            matches!(plan("refund", &r, false, now), Plan::Reply(t) if t.contains("99.00 CNY") && t.contains("refund in progress"))
        );
    }

    #[test]
    fn choosing_without_a_number() {
        let orders = vec![
            order("3", "paid"),
            order("2", "delivered"),
            order("1", "shipped"),
        ];
        let several = choose("order_status", &orders).unwrap_err();
        assert_eq!(several.len(), 2);
        assert!(ask_which(&several, false).contains("3 (Tea)"));
        assert_eq!(
            choose("order_status", &orders[1..2])
                .unwrap()
                .unwrap()
                .order_id,
            "2"
        );
        assert_eq!(choose("order_status", &[]).unwrap(), None);
    }
}
