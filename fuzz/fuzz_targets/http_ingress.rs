//! `cargo fuzz run http_ingress`: [`kefu_fuzz::targets::http_ingress`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kefu_fuzz::targets::http_ingress(data));
