//! The ticket service's retention rules (docs/operations.md#retention): published ticket
//! events (the outbox), and finished tickets with their messages. Unpublished events and
//! open or active tickets are never deleted.
use clap::Args;
use kefu_runtime::retention::{RetentionArgs, Rule, days};

/// Retention flags of the ticket service.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct RetentionFlags {
    #[command(flatten)]
    pub common: RetentionArgs,
    /// Days a published `ticket_events` outbox row is kept; 0 keeps them forever.
    /// Unpublished rows are never deleted.
    #[arg(long, env = "KEFU_RETENTION_TICKET_EVENTS_DAYS", default_value_t = 7)]
    pub retention_ticket_events_days: u32,
    /// Days a closed or handed-back ticket is kept after its last change, with its messages
    /// (`tickets`, `ticket_messages`); 0 keeps them forever. Open and active tickets are
    /// never deleted.
    #[arg(
        long,
        env = "KEFU_RETENTION_CLOSED_TICKETS_DAYS",
        default_value_t = 365
    )]
    pub retention_closed_tickets_days: u32,
}

impl Default for RetentionFlags {
    fn default() -> Self {
        Self {
            common: RetentionArgs::default(),
            retention_ticket_events_days: 7,
            retention_closed_tickets_days: 365,
        }
    }
}

/// The index the `ticket_events` rule uses.
pub const TICKET_EVENTS_INDEX: &str = "idx_ticket_events_published_created_at";
/// The index the `tickets` rule uses.
pub const TICKETS_INDEX: &str = "idx_tickets_status_updated_at";
/// The index the `ticket_messages` rule uses.
pub const TICKET_MESSAGES_INDEX: &str = "idx_ticket_messages_created_at";

/// The ticket service's rules, in the order a pass applies them: a finished ticket goes
/// first, then the messages left without a ticket (a message is never younger than its
/// ticket's last change, so they are past the same age).
pub fn rules(f: &RetentionFlags) -> Vec<Rule> {
    let closed = days(f.retention_closed_tickets_days);
    vec![
        Rule::new("ticket_events", "seq", "created_at")
            .only_if("ticket_events.published = TRUE")
            .max_age(days(f.retention_ticket_events_days)),
        Rule::new("tickets", "ticket_id", "updated_at")
            .only_if("tickets.status IN ('closed', 'handed_back')")
            .max_age(closed),
        Rule::new("ticket_messages", "id", "created_at")
            .only_if(
                "NOT EXISTS (SELECT 1 FROM tickets t WHERE t.ticket_id = ticket_messages.ticket_id)",
            )
            .max_age(closed),
    ]
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn flags_default_and_turn_off() {
        let args = crate::Args::try_parse_from(["kefu-ticket"]).expect("defaults");
        assert_eq!(args.retention, RetentionFlags::default());
        assert!(rules(&args.retention).iter().all(|r| r.max_age.is_some()));
        let off =
            crate::Args::try_parse_from(["kefu-ticket", "--retention-ticket-events-days", "0"])
                .expect("off");
        assert_eq!(off.retention.retention_ticket_events_days, 0);
        let on: Vec<&str> = rules(&off.retention)
            .iter()
            .filter(|r| r.max_age.is_some())
            .map(|r| r.table)
            .collect();
        assert!(
            !on.contains(&"ticket_events"),
            "ticket_events is off: {on:?}"
        );
    }
}
