//! `cargo fuzz run shopify_order`: [`kefu_fuzz::targets::shopify_order`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kefu_fuzz::targets::shopify_order(data));
