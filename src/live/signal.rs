//! Ctrl-C and SIGTERM: what every long-running command waits for.

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// A flag raised on Ctrl-C / SIGTERM, with the task that raises it (abort it when done).
/// The handlers are installed before this returns (on unix), so a signal that comes right
/// after is not lost. Must be called inside the async runtime.
pub fn stop_on_signal() -> (tokio::sync::watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    };
    let task = tokio::spawn(async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => shutdown_signal().await,
        }
        #[cfg(not(unix))]
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    (rx, task)
}

/// Raises `stop` on Ctrl-C / SIGTERM, from a thread of its own (for commands that run
/// outside the async runtime). The handlers are installed before this returns, so a
/// signal that comes at once is not lost.
pub fn spawn_stop_on_signal(stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return;
    };
    let (mut rx, _task) = {
        let _in = rt.enter();
        stop_on_signal()
    };
    let _ = std::thread::Builder::new()
        .name("chaosgate-signals".into())
        .spawn(move || {
            // the runtime drives the handler task while it waits
            if rt.block_on(rx.wait_for(|v| *v)).is_ok() {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
}
