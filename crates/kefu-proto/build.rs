//! Compiles `proto/` with protox (pure Rust), so building needs no system `protoc`.
use std::path::PathBuf;

use prost::Message;

const FILES: &[&str] = &[
    "kefu/events/v1/events.proto",
    "kefu/session/v1/session_router.proto",
    "kefu/translation/v1/translation.proto",
    "kefu/intent/v1/intent_classifier.proto",
    "kefu/assistant/v1/assistant.proto",
    "kefu/ticket/v1/ticket.proto",
    "kefu/order/v1/order_sync.proto",
    "kefu/metrics/v1/metrics.proto",
    "kefu/auth/v1/auth.proto",
    "kefu/admin/v1/admin.proto",
    "kefu/knowledge/v1/knowledge.proto",
    "kefu/privacy/v1/customer_data.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let fds = protox::compile(FILES, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("kefu_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
