//! The fuzz targets, bounded, in `make test`: every seed of `fuzz/seeds/<target>/`, then
//! `Target::test_inputs` inputs of the fixed-seed mutator (`KEFU_FUZZ_INPUTS=N` runs N
//! instead). An input that panics is saved under `target/fuzz-failures/` and fails the test;
//! `target/fuzz/x86_64-unknown-linux-gnu/release/<target> <file>` (after `make fuzz`) replays it.
use std::panic::{AssertUnwindSafe, catch_unwind};

use kefu_fuzz::{Target, mutate::Mutator, seeds};

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn check(t: &Target, input: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| (t.body)(input))).is_err() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-failures");
        let file = dir.join(format!(
            "{}-{:016x}",
            t.name,
            fnv(&String::from_utf8_lossy(input))
        ));
        let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, input));
        panic!(
            "{} panicked on {what} ({} bytes; saved to {}: {saved:?})",
            t.name,
            input.len(),
            file.display()
        );
    }
}

fn run(name: &str) {
    let t = kefu_fuzz::target(name).expect("a target");
    let seeds = seeds::load(name);
    assert!(!seeds.is_empty(), "no seeds in fuzz/seeds/{name}/");
    for (file, s) in &seeds {
        check(t, s, &format!("seed {file}"));
    }
    let n = std::env::var("KEFU_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(t.test_inputs);
    let mut m = Mutator::new(
        fnv(name),
        seeds.into_iter().map(|(_, d)| d).collect(),
        t.max_len,
    );
    for i in 0..n {
        let input = m.next_input();
        check(t, &input, &format!("generated input {i}"));
    }
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run(stringify!($name));
            }
        )*

        #[test]
        fn every_target_has_a_test() {
            let tested = [$(stringify!($name)),*];
            for t in kefu_fuzz::TARGETS {
                assert!(tested.contains(&t.name), "{} has no test", t.name);
            }
        }
    };
}

targets!(
    http_ingress,
    event_decoders,
    shopify_order,
    order_webhook,
    webhook_signature,
    order_csv,
    knowledge_bundle,
    intent_examples,
    entities,
    intent_model,
    shop_model,
);

#[test]
fn model_seeds_are_valid_models() {
    for (target, file) in [
        ("intent_model", "small.kim"),
        ("shop_model", "ngram.ksm"),
        ("shop_model", "head.ksm"),
    ] {
        let data = std::fs::read(seeds::dir().join(target).join(file)).expect("seed file");
        match target {
            "intent_model" => {
                kefu_intent::Model::from_bytes(&data).expect("valid");
            }
            _ => {
                kefu_intent::shop::ShopModel::from_bytes(&data).expect("valid");
            }
        }
    }
}

/// Writes the binary seeds (`cargo nextest run -p kefu-fuzz --run-ignored only
/// write_binary_seeds`) after a change to the artefact formats or the events.
#[test]
#[ignore = "regenerates committed seed files"]
fn write_binary_seeds() {
    let d = seeds::dir();
    for t in ["intent_model", "shop_model", "event_decoders"] {
        std::fs::create_dir_all(d.join(t)).unwrap();
    }
    for (name, bytes) in seeds::events() {
        std::fs::write(d.join("event_decoders").join(name), bytes).unwrap();
    }
    std::fs::write(d.join("intent_model/small.kim"), seeds::intent_model()).unwrap();
    std::fs::write(d.join("shop_model/ngram.ksm"), seeds::shop_model(0)).unwrap();
    std::fs::write(d.join("shop_model/head.ksm"), seeds::shop_model(4)).unwrap();
}

/// `make fuzz` (scripts/fuzz.sh) and the cargo-fuzz crate know every target, with its
/// `max_len`.
#[test]
fn make_fuzz_and_cargo_fuzz_list_every_target() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = std::fs::read_to_string(root.join("scripts/fuzz.sh")).unwrap();
    let manifest = std::fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap();
    let listed: Vec<&str> = script
        .split("ALL_TARGETS=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(listed.len(), kefu_fuzz::TARGETS.len());
    for t in kefu_fuzz::TARGETS {
        assert!(
            listed.contains(&format!("{}:{}", t.name, t.max_len).as_str()),
            "scripts/fuzz.sh lacks {}:{}",
            t.name,
            t.max_len
        );
        assert!(manifest.contains(&format!("name = \"{}\"", t.name)));
        assert!(
            root.join(format!("fuzz/fuzz_targets/{}.rs", t.name))
                .is_file()
        );
    }
}
