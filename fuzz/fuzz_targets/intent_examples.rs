//! `cargo fuzz run intent_examples`: [`kefu_fuzz::targets::intent_examples`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kefu_fuzz::targets::intent_examples(data));
