//! `cargo fuzz run entities`: [`kefu_fuzz::targets::entities`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kefu_fuzz::targets::entities(data));
