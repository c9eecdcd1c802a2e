//! The `civicflow` binary. Entry point of the CLI; see `cli.rs` for the commands.

fn main() -> std::process::ExitCode {
    civicflow::cli::run()
}
