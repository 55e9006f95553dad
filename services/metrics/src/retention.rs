//! The metrics service's retention rule (docs/operations.md#retention): dedupe rows of
//! counted deliveries (`metrics_seen_events`), kept until no replay can bring their event back.
use clap::Args;
use kefu_runtime::retention::{RetentionArgs, Rule, days};

/// Retention flags of the metrics service.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct RetentionFlags {
    #[command(flatten)]
    pub common: RetentionArgs,
    /// Days a counted delivery's dedupe row (`metrics_seen_events`) is kept; 0 keeps them
    /// forever. Must exceed the longest retention of the topics metrics reads, dead-letter
    /// topics included (`retention.ms`; 14 days in the Strimzi example): a replay of an
    /// event older than its dedupe row would be counted twice.
    #[arg(long, env = "KEFU_RETENTION_SEEN_EVENTS_DAYS", default_value_t = 30)]
    pub retention_seen_events_days: u32,
}

impl Default for RetentionFlags {
    fn default() -> Self {
        Self {
            common: RetentionArgs::default(),
            retention_seen_events_days: 30,
        }
    }
}

/// The index the `metrics_seen_events` rule uses.
pub const SEEN_EVENTS_INDEX: &str = "idx_metrics_seen_events_seen_at";

/// The metrics service's rules.
pub fn rules(f: &RetentionFlags) -> Vec<Rule> {
    vec![
        Rule::new("metrics_seen_events", "delivery_id", "seen_at")
            .max_age(days(f.retention_seen_events_days)),
    ]
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn flags_default_and_turn_off() {
        let args = crate::Args::try_parse_from(["kefu-metrics"]).expect("defaults");
        assert_eq!(args.retention, RetentionFlags::default());
        assert!(rules(&args.retention).iter().all(|r| r.max_age.is_some()));
        let off =
            crate::Args::try_parse_from(["kefu-metrics", "--retention-seen-events-days", "0"])
                .expect("off");
        assert_eq!(off.retention.retention_seen_events_days, 0);
        let on: Vec<&str> = rules(&off.retention)
            .iter()
            .filter(|r| r.max_age.is_some())
            .map(|r| r.table)
            .collect();
        assert!(on.is_empty(), "metrics_seen_events is off: {on:?}");
    }
}
