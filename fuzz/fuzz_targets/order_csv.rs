//! `cargo fuzz run order_csv`: [`kefu_fuzz::targets::order_csv`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kefu_fuzz::targets::order_csv(data));
