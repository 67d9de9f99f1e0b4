//! `p2phost`: send and receive files peer to peer. This binary reads the command line and shows
//! what happens; the work is in the library.

// Talking to the user on stdout and stderr is this binary's job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod console;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Parser;
use p2phost::code::TransferCode;
use p2phost::oneshot::{self, CodeChoice, OneshotError};
use tracing_subscriber::EnvFilter;

use args::{Cli, Command, Common};
use console::{Console, Style};

/// Exit status of bad usage, as clap uses.
const USAGE: i32 = 2;

/// Why the command failed: a kind for `--json`, the exit status, and the message.
struct Failure {
    kind: &'static str,
    exit: i32,
    message: String,
}

impl Failure {
    fn usage(message: String) -> Self {
        Self {
            kind: "usage",
            exit: USAGE,
            message,
        }
    }
}

impl From<OneshotError> for Failure {
    fn from(e: OneshotError) -> Self {
        Self {
            kind: e.kind(),
            exit: e.exit_code(),
            message: e.to_string(),
        }
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let (mut console, result) = match cli.command {
        Command::Send {
            common,
            words,
            code,
            paths,
        } => {
            let mut console = console(&common, false);
            let result = runtime.block_on(send(&common, &mut console, words, code, &paths));
            (console, result)
        }
        Command::Receive {
            common,
            out,
            overwrite,
            yes,
            code,
        } => {
            let mut console = console(&common, yes);
            let result = runtime.block_on(receive(&common, &mut console, &out, overwrite, &code));
            (console, result)
        }
    };
    if let Err(failure) = result {
        console.error(failure.kind, &failure.message);
        std::process::exit(failure.exit);
    }
}

fn console(common: &Common, yes: bool) -> Console {
    let style = if common.json {
        Style::Json
    } else if common.quiet {
        Style::Quiet
    } else {
        Style::Text
    };
    // The receiver needs the same server; say so when it is not the default one.
    let receive_flags = match std::env::var("P2PHOST_SERVER") {
        Ok(env) if env == common.server => String::new(),
        _ if common.server == "ws://127.0.0.1:8787" => String::new(),
        _ => format!(" --server {}", common.server),
    };
    Console::new(style, common.verify, yes, receive_flags)
}

async fn send(
    common: &Common,
    console: &mut Console,
    words: usize,
    code: Option<String>,
    paths: &[PathBuf],
) -> Result<(), Failure> {
    let options = common.session_options().map_err(Failure::usage)?;
    let code = match code {
        Some(text) => CodeChoice::Given(args::chosen_code(&text).map_err(Failure::usage)?),
        None => CodeChoice::Generate { words },
    };
    let report = oneshot::send(options, paths, code, console).await?;
    console.done(
        "sent",
        report.files,
        report.bytes,
        report.wire_bytes,
        report.seconds,
    );
    Ok(())
}

async fn receive(
    common: &Common,
    console: &mut Console,
    out: &Path,
    overwrite: bool,
    code: &str,
) -> Result<(), Failure> {
    let options = common.session_options().map_err(Failure::usage)?;
    let code = TransferCode::parse(code).map_err(|e| Failure::usage(e.to_string()))?;
    let report = oneshot::receive(options, &code, out, overwrite, console).await?;
    console.done(
        "received",
        report.files,
        report.bytes,
        report.wire_bytes,
        report.seconds,
    );
    Ok(())
}
