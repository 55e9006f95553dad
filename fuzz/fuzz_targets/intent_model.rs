//! `cargo fuzz run intent_model`: [`kefu_fuzz::targets::intent_model`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kefu_fuzz::targets::intent_model(data));
