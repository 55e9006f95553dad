//! `kefu-knowledge` binary: parse config (exit 64 on bad values), then run the service.
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() {
    let args = kefu_runtime::config::parse_or_exit::<kefu_knowledge_service::Args>();
    let code = kefu_runtime::service::exit_code(kefu_knowledge_service::run(args).await).await;
    std::process::exit(code);
}
