//! order-sync's retention rules (docs/operations.md#retention): published commerce events
//! (the outbox) and recorded connector rejections. Unpublished events are never deleted.
use clap::Args;
use kefu_runtime::retention::{RetentionArgs, Rule, days};

/// Retention flags of order-sync.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct RetentionFlags {
    #[command(flatten)]
    pub common: RetentionArgs,
    /// Days a published `commerce_events` outbox row is kept; 0 keeps them forever.
    /// Unpublished rows are never deleted.
    #[arg(long, env = "KEFU_RETENTION_COMMERCE_EVENTS_DAYS", default_value_t = 7)]
    pub retention_commerce_events_days: u32,
    /// Days a `connector_rejections` row is kept; 0 keeps them forever.
    #[arg(
        long,
        env = "KEFU_RETENTION_CONNECTOR_REJECTIONS_DAYS",
        default_value_t = 30
    )]
    pub retention_connector_rejections_days: u32,
}

impl Default for RetentionFlags {
    fn default() -> Self {
        Self {
            common: RetentionArgs::default(),
            retention_commerce_events_days: 7,
            retention_connector_rejections_days: 30,
        }
    }
}

/// The index the `commerce_events` rule uses.
pub const COMMERCE_EVENTS_INDEX: &str = "idx_commerce_events_published_created_at";
/// The index the `connector_rejections` rule uses.
pub const REJECTIONS_INDEX: &str = "idx_connector_rejections_received_at";
/// The index of a shop's rejections, newest first.
pub const REJECTIONS_SHOP_INDEX: &str = "idx_connector_rejections_shop_id";

/// order-sync's rules.
pub fn rules(f: &RetentionFlags) -> Vec<Rule> {
    vec![
        Rule::new("commerce_events", "seq", "created_at")
            .only_if("commerce_events.published = TRUE")
            .max_age(days(f.retention_commerce_events_days)),
        Rule::new("connector_rejections", "id", "received_at")
            .max_age(days(f.retention_connector_rejections_days)),
    ]
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn flags_default_and_turn_off() {
        let args = crate::Args::try_parse_from(["kefu-order-sync"]).expect("defaults");
        assert_eq!(args.retention, RetentionFlags::default());
        assert!(rules(&args.retention).iter().all(|r| r.max_age.is_some()));
        let off = crate::Args::try_parse_from([
            "kefu-order-sync",
            "--retention-commerce-events-days",
            "0",
        ])
        .expect("off");
        assert_eq!(off.retention.retention_commerce_events_days, 0);
        let on: Vec<&str> = rules(&off.retention)
            .iter()
            .filter(|r| r.max_age.is_some())
            .map(|r| r.table)
            .collect();
        assert!(
            !on.contains(&"commerce_events"),
            "commerce_events is off: {on:?}"
        );
    }
}
