//! Logging: `tracing` with a pretty or JSON formatter. Nothing secret is ever a field: the
//! newtypes that hold secrets print `..` in their `Debug`.

use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;

/// Installs the global subscriber; `RUST_LOG` wins over `log.level`. Safe to call twice. Logs
/// go to standard error, so that standard output carries only a command's results.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).with_writer(std::io::stderr);
    let _ = if settings.format == "json" { builder.json().try_init() } else { builder.try_init() };
}
