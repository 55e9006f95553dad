//! The dialogue policy: does the bot answer, or a person?
use kefu_proto::events::v1::Classification;

use crate::entity::{conversation, conversation_state};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteTo {
    Bot,
    Human,
}

impl RouteTo {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteTo::Bot => "bot",
            RouteTo::Human => "human",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub route: RouteTo,
    pub reason: &'static str,
}

/// Rules, in order: the conversation is with a person (waiting for or talking to an agent) →
/// human, silently; the customer asked for a person or complained → human; the shop routes
/// this intent to people → human; the same question `max_repeats` times in a row (the bot is
/// not resolving it) → human; confidence below the threshold → the bot, from the shop's
/// knowledge only ([`ROUTE_KNOWLEDGE_ONLY`](kefu_runtime::event::ROUTE_KNOWLEDGE_ONLY): no order
/// is looked up, and when the knowledge does not answer a person does); otherwise the bot
/// answers. Out-of-scope questions go to the bot too: the classifier's scope is generic, the
/// shop's knowledge is not, and the assistant hands over to a person when the knowledge has
/// no answer. Each shop can set its own values (`SetDialoguePolicy`).
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub min_confidence: f32,
    /// 0 turns the repeat rule off.
    pub max_repeats: usize,
    /// Intents this shop always hands to people.
    pub human_intents: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_confidence: 0.5,
            max_repeats: 3,
            human_intents: Vec::new(),
        }
    }
}

impl Policy {
    pub fn decide(
        &self,
        c: Option<&Classification>,
        conv: Option<&conversation::Model>,
    ) -> Decision {
        let human = |reason| Decision {
            route: RouteTo::Human,
            reason,
        };
        if conv.is_some_and(|c| {
            c.state == conversation_state::WAITING_FOR_HUMAN || c.state == conversation_state::HUMAN
        }) {
            // Handed over: the message goes to the ticket and the bot stays silent.
            return human("with a person");
        }
        let Some(c) = c else {
            return human("not classified");
        };
        if c.intent == "human_agent" {
            return human("customer asked for a person");
        }
        if c.intent == "complaint" {
            return human("complaint");
        }
        if self.human_intents.contains(&c.intent) {
            return human("shop rule");
        }
        let unsure = c.intent != "out_of_scope" && c.confidence < self.min_confidence;
        if self.max_repeats > 0
            && let Some(conv) = conv
        {
            // recent_intents holds the previous messages' intents, most recent first.
            let previous: Vec<&str> = conv.intents().take(self.max_repeats - 1).collect();
            if previous.len() + 1 == self.max_repeats && previous.iter().all(|i| *i == c.intent) {
                return human("bot not resolving");
            }
        }
        if unsure {
            // The generic intent is a guess; the shop's knowledge, which has its own
            // threshold, may still answer. Nothing is done on an order for it.
            return Decision {
                route: RouteTo::Bot,
                reason: kefu_runtime::event::ROUTE_KNOWLEDGE_ONLY,
            };
        }
        Decision {
            route: RouteTo::Bot,
            reason: "bot can answer",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(intent: &str, confidence: f32) -> Classification {
        Classification {
            intent: intent.into(),
            confidence,
            ..Default::default()
        }
    }

    #[test]
    fn routes_by_rules() {
        let p = Policy::default();
        assert_eq!(
            p.decide(Some(&c("shipping_delay", 0.9)), None).route,
            RouteTo::Bot
        );
        let unsure = p.decide(Some(&c("shipping_delay", 0.3)), None);
        assert_eq!(
            (unsure.route, unsure.reason),
            (RouteTo::Bot, kefu_runtime::event::ROUTE_KNOWLEDGE_ONLY)
        );
        assert_eq!(
            p.decide(Some(&c("human_agent", 0.9)), None).route,
            RouteTo::Human
        );
        assert_eq!(p.decide(None, None).route, RouteTo::Human);
        // Out of the classifier's scope is not out of the shop's knowledge: the assistant asks
        // it, and hands over when it has nothing.
        assert_eq!(
            p.decide(Some(&c("out_of_scope", 0.99)), None).route,
            RouteTo::Bot
        );
        assert_eq!(
            p.decide(Some(&c("out_of_scope", 0.2)), None).route,
            RouteTo::Bot
        );
        assert_eq!(
            p.decide(Some(&c("complaint", 0.99)), None).route,
            RouteTo::Human
        );
        let conv = conversation::Model {
            conversation_id: "c".into(),
            shop_id: "s".into(),
            customer_id: "u".into(),
            recent_intents: String::new(),
            open_ticket_id: "T-1".into(),
            previous_conversation_id: String::new(),
            state: conversation_state::HUMAN.into(),
            ticket_seq: 3,
            created_at: chrono::Utc::now(),
            last_message_at: chrono::Utc::now(),
        };
        assert_eq!(
            p.decide(Some(&c("shipping_delay", 0.9)), Some(&conv))
                .reason,
            "with a person"
        );
        let mut waiting = conv.clone();
        waiting.state = conversation_state::WAITING_FOR_HUMAN.into();
        assert_eq!(
            p.decide(Some(&c("greeting", 0.99)), Some(&waiting)).reason,
            "with a person"
        );
        let mut asked = conv.clone();
        asked.open_ticket_id = String::new();
        asked.state = conversation_state::BOT.into();
        asked.recent_intents = "refund,refund,greeting".into();
        assert_eq!(
            p.decide(Some(&c("refund", 0.9)), Some(&asked)).reason,
            "bot not resolving"
        );
        assert_eq!(
            p.decide(Some(&c("invoice", 0.9)), Some(&asked)).route,
            RouteTo::Bot
        );
        asked.recent_intents = "refund,greeting".into();
        assert_eq!(
            p.decide(Some(&c("refund", 0.9)), Some(&asked)).route,
            RouteTo::Bot
        );
        let strict = Policy {
            human_intents: vec!["refund".into()],
            max_repeats: 0,
            ..Policy::default()
        };
        assert_eq!(
            strict.decide(Some(&c("refund", 0.99)), None).reason,
            "shop rule"
        );
        asked.recent_intents = "refund,refund,refund".into();
        assert_eq!(
            strict.decide(Some(&c("invoice", 0.9)), Some(&asked)).route,
            RouteTo::Bot
        );
    }
}
