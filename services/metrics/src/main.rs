//! `kefu-metrics` binary: parse config (exit 64 on bad values), then run the service.
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() {
    let args = kefu_runtime::config::parse_or_exit::<kefu_metrics::Args>();
    let code = kefu_runtime::service::exit_code(kefu_metrics::run(args).await).await;
    std::process::exit(code);
}
