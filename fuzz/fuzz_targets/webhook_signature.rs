//! `cargo fuzz run webhook_signature`: [`kefu_fuzz::targets::webhook_signature`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kefu_fuzz::targets::webhook_signature(data));
