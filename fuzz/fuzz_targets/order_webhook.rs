//! `cargo fuzz run order_webhook`: [`kefu_fuzz::targets::order_webhook`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kefu_fuzz::targets::order_webhook(data));
