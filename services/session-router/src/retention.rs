//! session-router's retention rules (docs/operations.md#retention): delivered webhook rows,
//! and old messages and replies. Undelivered webhook rows, unpublished messages and replies
//! a webhook still has to deliver are never deleted.
use clap::Args;
use kefu_runtime::retention::{RetentionArgs, Rule, days};

/// Retention flags of session-router.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct RetentionFlags {
    #[command(flatten)]
    pub common: RetentionArgs,
    /// Days a delivered webhook row (`webhook_deliveries`) is kept after its delivery; 0 keeps
    /// them forever. Undelivered rows are never deleted.
    #[arg(
        long,
        env = "KEFU_RETENTION_WEBHOOK_DELIVERIES_DAYS",
        default_value_t = 7
    )]
    pub retention_webhook_deliveries_days: u32,
    /// Days customer messages and replies (`messages`, `replies`) are kept; 0 keeps them
    /// forever. A message whose inbound event is not yet published, and a reply a webhook has
    /// not yet delivered, are kept whatever their age.
    #[arg(long, env = "KEFU_RETENTION_MESSAGES_DAYS", default_value_t = 180)]
    pub retention_messages_days: u32,
}

impl Default for RetentionFlags {
    fn default() -> Self {
        Self {
            common: RetentionArgs::default(),
            retention_webhook_deliveries_days: 7,
            retention_messages_days: 180,
        }
    }
}

/// The index the `webhook_deliveries` rule and the delivery loop's due query use.
pub const WEBHOOK_DELIVERIES_INDEX: &str = "idx_webhook_deliveries_delivered_next";
/// The index the `messages` rule uses.
pub const MESSAGES_INDEX: &str = "idx_messages_published_created_at";
/// The index the `replies` rule uses.
pub const REPLIES_INDEX: &str = "idx_replies_created_at";

/// session-router's rules, in the order a pass applies them.
pub fn rules(f: &RetentionFlags) -> Vec<Rule> {
    vec![
        Rule::new("webhook_deliveries", "id", "delivered_at")
            .only_if("webhook_deliveries.delivered_at IS NOT NULL")
            .max_age(days(f.retention_webhook_deliveries_days)),
        Rule::new("messages", "message_id", "created_at")
            .only_if("messages.published = TRUE")
            .max_age(days(f.retention_messages_days)),
        Rule::new("replies", "cursor", "created_at")
            .only_if(
                "NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                 WHERE d.reply_cursor = replies.cursor AND d.delivered_at IS NULL)",
            )
            .max_age(days(f.retention_messages_days)),
    ]
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn flags_default_and_turn_off() {
        let args = crate::Args::try_parse_from(["kefu-session-router"]).expect("defaults");
        assert_eq!(args.retention, RetentionFlags::default());
        assert!(rules(&args.retention).iter().all(|r| r.max_age.is_some()));
        let off =
            crate::Args::try_parse_from(["kefu-session-router", "--retention-messages-days", "0"])
                .expect("off");
        assert_eq!(off.retention.retention_messages_days, 0);
        let on: Vec<&str> = rules(&off.retention)
            .iter()
            .filter(|r| r.max_age.is_some())
            .map(|r| r.table)
            .collect();
        for table in ["messages", "replies"] {
            assert!(!on.contains(&table), "{table} is off");
        }
    }
}
