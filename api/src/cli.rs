//! Command-line interface: `check`, `fmt`, `graph`, `explain`.
//!
//! Exit codes: 0 success, 1 a policy has errors (or `fmt --check` found unformatted files),
//! 2 the command itself failed (unreadable file, bad arguments).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use civicflow_dsl::{compile, Code, Renderer};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "civicflow", version, about = "Run public-administration procedures written as policies", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check policy files and print every diagnostic; exits 1 if any file has an error.
    Check {
        /// Policy files (`.cf`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = DiagFormat::Text)]
        format: DiagFormat,
    },
    /// Rewrite policy files in the canonical layout (comments are kept).
    Fmt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Change nothing; list the files that are not formatted and exit 1 if there are any.
        #[arg(long)]
        check: bool,
    },
    /// Print the compiled state-machine graph of a policy.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Explain a diagnostic code, e.g. `civicflow explain E0402`.
    Explain { code: String },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DiagFormat {
    /// rustc-like text with the source line and carets.
    Text,
    /// One JSON array of diagnostics per file, as the HTTP API returns them.
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
    /// The graph IR itself, with its content hash.
    Json,
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { files, format } => check(&files, format),
        Command::Fmt { files, check } => fmt(&files, check),
        Command::Graph { file, format } => graph(&file, format),
        Command::Explain { code } => explain(&code),
    }
}

fn read(path: &Path) -> Result<String, ExitCode> {
    std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: cannot read `{}`: {e}", path.display());
        ExitCode::from(2)
    })
}

fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn check(files: &[PathBuf], format: DiagFormat) -> ExitCode {
    let mut failed = false;
    let mut unreadable = false;
    let mut json_out = serde_json::Map::new();
    for path in files {
        let Ok(source) = read(path) else {
            unreadable = true;
            continue;
        };
        let name = path.display().to_string();
        let renderer = Renderer::new(&name, &source);
        match compile(&source) {
            Ok(compiled) => {
                if let DiagFormat::Json = format {
                    json_out.insert(
                        name.clone(),
                        serde_json::to_value(renderer.json(&compiled.warnings)).unwrap_or_default(),
                    );
                } else {
                    eprint!("{}", renderer.text(&compiled.warnings, color()));
                    let steps = compiled.policy.nodes.len();
                    println!(
                        "ok: {name}: policy `{}`, {steps} phases and steps, version {}",
                        compiled.policy.name,
                        &compiled.hash[..12]
                    );
                }
            }
            Err(diagnostics) => {
                failed = true;
                match format {
                    DiagFormat::Json => {
                        json_out.insert(
                            name.clone(),
                            serde_json::to_value(renderer.json(diagnostics.as_slice())).unwrap_or_default(),
                        );
                    }
                    DiagFormat::Text => {
                        eprint!("{}", renderer.text(diagnostics.as_slice(), color()));
                        let n = diagnostics.as_slice().len();
                        eprintln!("error: {name}: {n} error{} found\n", if n == 1 { "" } else { "s" });
                    }
                }
            }
        }
    }
    if let DiagFormat::Json = format {
        println!("{}", serde_json::to_string_pretty(&json_out).unwrap_or_default());
    }
    if unreadable {
        ExitCode::from(2)
    } else if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn fmt(files: &[PathBuf], check_only: bool) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    let mut unformatted = 0usize;
    for path in files {
        let Ok(source) = read(path) else {
            status = ExitCode::from(2);
            continue;
        };
        let name = path.display().to_string();
        let formatted = match civicflow_dsl::fmt::format_source(&source) {
            Ok(f) => f,
            Err(d) => {
                eprint!("{}", Renderer::new(&name, &source).text(std::slice::from_ref(&d), color()));
                status = ExitCode::from(1);
                continue;
            }
        };
        if formatted == source {
            continue;
        }
        if check_only {
            println!("{name}: not formatted");
            unformatted += 1;
        } else if let Err(e) = write_atomically(path, &formatted) {
            eprintln!("error: cannot write `{name}`: {e}");
            status = ExitCode::from(2);
        } else {
            println!("formatted {name}");
        }
    }
    if unformatted > 0 {
        eprintln!(
            "{unformatted} file{} would be reformatted; run `civicflow fmt` on them",
            if unformatted == 1 { "" } else { "s" }
        );
        return ExitCode::from(1);
    }
    status
}

/// Writes beside the file and renames over it, so an interrupted write loses nothing.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("cf.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn graph(path: &Path, format: GraphFormat) -> ExitCode {
    let Ok(source) = read(path) else { return ExitCode::from(2) };
    let name = path.display().to_string();
    match compile(&source) {
        Ok(compiled) => {
            let out = match format {
                GraphFormat::Dot => civicflow_dsl::render::dot(&compiled.policy),
                GraphFormat::Mermaid => civicflow_dsl::render::mermaid(&compiled.policy),
                GraphFormat::Json => {
                    let v = serde_json::json!({ "hash": compiled.hash, "policy": compiled.policy });
                    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
                }
            };
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            eprint!("{}", Renderer::new(&name, &source).text(diagnostics.as_slice(), color()));
            ExitCode::from(1)
        }
    }
}

fn explain(code: &str) -> ExitCode {
    let wanted = code.trim().to_ascii_uppercase();
    match Code::ALL.iter().find(|c| c.as_str() == wanted) {
        Some(c) => {
            println!("{}: {}\n\n{}", c.as_str(), c.title(), c.explanation());
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("error: no diagnostic code `{code}`; codes are E0001 … E0403 (see docs/diagnostics.md)");
            ExitCode::from(2)
        }
    }
}
