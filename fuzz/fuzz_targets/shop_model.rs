//! `cargo fuzz run shop_model`: [`kefu_fuzz::targets::shop_model`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kefu_fuzz::targets::shop_model(data));
