//! The `tessera` binary: `serve`, `migrate` and the admin commands.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = tessera_cli::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tessera: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tessera_cli::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // `tessera audit list | head -2`: the reader has what it wanted
        Err(e) if e.is::<tessera_cli::cli::StdoutClosed>() => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: {e:#}");
            std::process::ExitCode::from(tessera_cli::cli::exit_code(&e))
        }
    }
}
