//! The `civicflow` binary. Entry point of the CLI; see `cli.rs` for the commands.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
