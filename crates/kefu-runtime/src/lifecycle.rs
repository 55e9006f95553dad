//! Graceful shutdown: on SIGTERM or SIGINT health goes NOT_SERVING, the shutdown token is
//! cancelled (gRPC stops accepting, consumers stop fetching, finish the event in hand and
//! commit), and the process waits for its tasks up to the grace period.
use std::{future::Future, time::Duration};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::grpc::Health;

/// Runs blocking work (parsing a model file, building an index) off the async workers. A panic
/// in it comes back as an error, so the task that awaited it carries on with what it had
/// (a reload keeps the running model) instead of ending and taking the service down.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            Err(anyhow::anyhow!("panicked: {message}"))
        }
        Err(e) => Err(anyhow::anyhow!("cancelled: {e}")),
    }
}

pub struct Lifecycle {
    pub shutdown: CancellationToken,
    grace: Duration,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
}

impl Lifecycle {
    pub fn new(grace: Duration) -> Self {
        Self {
            shutdown: CancellationToken::new(),
            grace,
            tasks: JoinSet::new(),
        }
    }

    /// Runs a long-lived task; if it ends early the whole service shuts down.
    pub fn spawn(
        &mut self,
        name: &'static str,
        fut: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        self.tasks.spawn(async move { (name, fut.await) });
    }

    /// Waits for a signal (or a task ending), then drains. Returns the process exit code.
    pub async fn run(mut self, health: Option<Health>) -> i32 {
        let mut code = 0;
        tokio::select! {
            _ = shutdown_signal() => tracing::info!("shutdown signal received"),
            Some(res) = self.tasks.join_next() => {
                code = 1;
                match res {
                    Ok((name, Ok(()))) => tracing::error!(task = name, "task ended unexpectedly"),
                    Ok((name, Err(e))) => tracing::error!(task = name, error = ?e, "task failed"),
                    Err(e) => tracing::error!(error = %e, "task panicked"),
                }
            }
        }
        if let Some(h) = &health {
            h.set(false).await;
        }
        self.shutdown.cancel();
        let drained = tokio::time::timeout(self.grace, async {
            while let Some(res) = self.tasks.join_next().await {
                match res {
                    Ok((_, Ok(()))) => {}
                    Ok((name, Err(e))) => {
                        tracing::error!(task = name, error = ?e, "task failed while draining");
                        code = 1;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "task panicked while draining");
                        code = 1;
                    }
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(grace = ?self.grace, "grace period over; exiting with work in flight");
            self.tasks.abort_all();
            code = 1;
        } else {
            tracing::info!("drained; bye");
        }
        code
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_blocking_work_is_an_error_not_the_end() {
        let e = blocking(|| -> anyhow::Result<()> { panic!("bad header") })
            .await
            .expect_err("a panic is an error");
        assert!(e.to_string().contains("bad header"), "{e}");
        let n = blocking(|| Ok(format!("still {}", "here")))
            .await
            .expect("the next call works");
        assert_eq!(n, "still here");
    }
}
