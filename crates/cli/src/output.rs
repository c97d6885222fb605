//! What every command shares to answer: its output on standard output (a closed pipe ends it
//! quietly), and the exit status of a failure.

/// What went wrong, by the exit status it gives (see [`exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// 2: the command line asks for something that cannot be (an unknown profile, no --yes).
    #[error("{0}")]
    Usage(String),
    /// 3: what the command names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 4: a check ran and found a problem (audit verify, conformance, doctor).
    #[error("{0}")]
    CheckFailed(String),
    /// 5: it exists already.
    #[error("{0}")]
    Conflict(String),
}

/// The exit status of a failed command: 1 for anything else (configuration, database, I/O).
/// clap's own usage errors exit 2 too.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<Failure>() {
        Some(Failure::Usage(_)) => 2,
        Some(Failure::NotFound(_)) => 3,
        Some(Failure::CheckFailed(_)) => 4,
        Some(Failure::Conflict(_)) => 5,
        None => 1,
    }
}

/// Standard output went away: its reader has stopped reading (`tessera audit list | head -2`).
/// Not a failure: `main` ends quietly, with success, as the command-line tools that print
/// lists do.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed by its reader")]
pub struct StdoutClosed;

/// Writes a command's output to standard output, flushed. A closed pipe is [`StdoutClosed`],
/// never a panic.
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to standard output")),
    }
}

/// `println!` for a command's output: `outln!(...)?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;
