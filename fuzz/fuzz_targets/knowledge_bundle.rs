//! `cargo fuzz run knowledge_bundle`: [`kefu_fuzz::targets::knowledge_bundle`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kefu_fuzz::targets::knowledge_bundle(data));
