//! `cargo fuzz run event_decoders`: [`kefu_fuzz::targets::event_decoders`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kefu_fuzz::targets::event_decoders(data));
