//! Logging: `tracing` to stderr (journald keeps it), human-readable or JSON; panics go through
//! tracing as one line (ractor catches them and turns them into supervision events).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber and the panic hook. `RUST_LOG` overrides `default_filter`.
pub fn init(default_filter: &str, json: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let installed = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    // Already installed (tests start the daemon in-process more than once): keep the first.
    let _ = installed;
    install_panic_hook();
}

/// Panics are logged as one `error` line with their location; a backtrace only when
/// RUST_BACKTRACE asks for one. A panicking actor is then restarted by its supervisor.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-string payload".to_string()
        };
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            let backtrace = std::backtrace::Backtrace::force_capture();
            tracing::error!(%location, thread, %backtrace, "panic: {message}");
        } else {
            tracing::error!(%location, thread, "panic: {message}");
        }
    }));
}
