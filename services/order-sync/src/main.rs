//! `kefu-order-sync` binary: parse config (exit 64 on bad values), then run the service.
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() {
    let args = kefu_runtime::config::parse_or_exit::<kefu_order_sync::Args>();
    let code = kefu_runtime::service::exit_code(kefu_order_sync::run(args).await).await;
    std::process::exit(code);
}
