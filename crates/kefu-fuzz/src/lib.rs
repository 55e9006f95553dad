//! Fuzz bodies of Kefu's input parsers (docs/security.md, "Fuzzing").
//!
//! Every body takes arbitrary bytes, runs them through the real parser (and the validation
//! and derived values behind it), and panics only when a property of that code is broken:
//! a parser must answer every input with a value or an error, never a panic, and never ask
//! for memory the input does not justify.
//!
//! The same functions run two ways:
//! * `make fuzz` / `cargo fuzz run <target>`: the libFuzzer targets in `fuzz/` (one per entry
//!   of [`TARGETS`]), coverage-guided, with `-rss_limit_mb` and `-malloc_limit_mb`;
//! * `make test`: `tests/targets.rs` runs every target on its seeds (`fuzz/seeds/<target>/`)
//!   and a fixed number of inputs from [`mutate::Mutator`] (a fixed-seed mutator), so a
//!   regression fails the ordinary test suite.
#![forbid(unsafe_code)]

pub mod mutate;
pub mod seeds;
pub mod targets;

/// A fuzz body: any bytes in, a panic only on a bug.
pub type Body = fn(&[u8]);

/// One fuzz target: its name (also the cargo-fuzz target's and the seed directory's), the
/// body, the largest input worth trying, and the inputs `make test` tries after the seeds.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub name: &'static str,
    pub body: Body,
    pub max_len: usize,
    pub test_inputs: usize,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "http_ingress",
        body: targets::http_ingress,
        max_len: 4096,
        test_inputs: 20000,
    },
    Target {
        name: "event_decoders",
        body: targets::event_decoders,
        max_len: 2048,
        test_inputs: 15000,
    },
    Target {
        name: "shopify_order",
        body: targets::shopify_order,
        max_len: 8192,
        test_inputs: 12000,
    },
    Target {
        name: "order_webhook",
        body: targets::order_webhook,
        max_len: 8192,
        test_inputs: 8000,
    },
    Target {
        name: "webhook_signature",
        body: targets::webhook_signature,
        max_len: 1024,
        test_inputs: 8000,
    },
    Target {
        name: "order_csv",
        body: targets::order_csv,
        max_len: 4096,
        test_inputs: 2000,
    },
    Target {
        name: "knowledge_bundle",
        body: targets::knowledge_bundle,
        max_len: 8192,
        test_inputs: 2000,
    },
    Target {
        name: "intent_examples",
        body: targets::intent_examples,
        max_len: 4096,
        test_inputs: 2000,
    },
    Target {
        name: "entities",
        body: targets::entities,
        max_len: 1024,
        test_inputs: 1500,
    },
    Target {
        name: "intent_model",
        body: targets::intent_model,
        max_len: 4096,
        test_inputs: 20000,
    },
    Target {
        name: "shop_model",
        body: targets::shop_model,
        max_len: 8192,
        test_inputs: 15000,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
