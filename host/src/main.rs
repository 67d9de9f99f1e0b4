//! `p2phost`: send and receive files peer to peer. This file reads the command line and prints
//! what happens; the work is in the library.

// Talking to the user on stdout and stderr is this binary's job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use p2phost::code::{DEFAULT_WORDS, TransferCode};
use p2phost::oneshot::{self, OneshotError};
use p2phost::session::SessionOptions;
use p2phost::transfer::ValidManifest;
use tracing_subscriber::EnvFilter;

/// End-to-end encrypted peer-to-peer file transfer.
#[derive(Debug, Parser)]
#[command(name = "p2phost", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Signaling server URL [env: P2PHOST_SERVER; default: ws://127.0.0.1:8787].
    #[arg(long, env = "P2PHOST_SERVER", default_value = "ws://127.0.0.1:8787")]
    server: String,
    /// STUN server, like stun:HOST:3478 [default: the signaling server's host, port 3478].
    #[arg(long)]
    stun: Option<String>,
    /// Print newline-delimited JSON events on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Print nothing but errors.
    #[arg(long)]
    quiet: bool,
    /// Show a verification string once connected; it is the same on both sides unless someone is
    /// in the middle.
    #[arg(long)]
    verify: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Offer files and folders; prints a code for the receiver.
    Send {
        #[command(flatten)]
        common: Common,
        /// Words in the code (more words, harder to guess).
        #[arg(long, default_value_t = DEFAULT_WORDS)]
        words: usize,
        /// Files and folders to send.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Receive what a code offers.
    Receive {
        #[command(flatten)]
        common: Common,
        /// Folder to receive into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Replace files that exist already.
        #[arg(long)]
        overwrite: bool,
        /// Accept the offer without asking.
        #[arg(long)]
        yes: bool,
        /// The code the sender shows, like 7-guitar-orbit.
        code: String,
    },
}

impl Common {
    /// The closing event (JSON) or summary line (text) of a successful transfer.
    fn done(&self, verb: &str, files: u64, bytes: u64, wire_bytes: u64, seconds: f64) {
        self.say(
            serde_json::json!({"event": "done", "files": files, "bytes": bytes,
                "wire_bytes": wire_bytes, "seconds": seconds}),
            || format!("{verb} {files} files, {}", rate(wire_bytes, seconds)),
        );
    }

    fn show_verification(&self, verification: &str) {
        if self.verify {
            self.say(
                serde_json::json!({"event": "verify", "string": verification}),
                || format!("verification: {verification} (the other side must show the same)"),
            );
        }
    }

    fn options(&self) -> SessionOptions {
        let host = self
            .server
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', '?']).next())
            .map(|authority| authority.rsplit_once(':').map_or(authority, |(h, _)| h))
            .unwrap_or("127.0.0.1");
        SessionOptions {
            signaling_url: self.server.clone(),
            ice_servers: vec![
                self.stun
                    .clone()
                    .unwrap_or_else(|| format!("stun:{host}:3478")),
            ],
            bind: vec!["0.0.0.0:0".into()],
            step_timeout: Duration::from_secs(30),
        }
    }

    /// A JSON event or a line of text, as asked.
    fn say(&self, json: serde_json::Value, text: impl FnOnce() -> String) {
        let mut out = std::io::stdout().lock();
        if self.json {
            let _ = writeln!(out, "{json}");
        } else if !self.quiet {
            let _ = writeln!(out, "{}", text());
        }
        let _ = out.flush();
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
    let (common, result) = match cli.command {
        Command::Send {
            common,
            words,
            paths,
        } => {
            let result = runtime.block_on(send(&common, words, &paths));
            (common, result)
        }
        Command::Receive {
            common,
            out,
            overwrite,
            yes,
            code,
        } => {
            let result = runtime.block_on(receive(&common, &out, overwrite, yes, &code));
            (common, result)
        }
    };
    if let Err((kind, code, message)) = result {
        common.say(
            serde_json::json!({"event": "error", "kind": kind, "message": message}),
            String::new,
        );
        eprintln!("error: {message}");
        std::process::exit(code);
    }
}

type Failure = (&'static str, i32, String);

fn failure(e: &OneshotError) -> Failure {
    (e.kind(), e.exit_code(), e.to_string())
}

fn rate(bytes: u64, seconds: f64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    let mbs = bytes as f64 / seconds.max(1e-6) / 1e6;
    format!("{mib:.1} MiB in {seconds:.2} s, {mbs:.0} MB/s")
}

async fn send(common: &Common, words: usize, paths: &[PathBuf]) -> Result<(), Failure> {
    let show_code = |code: &TransferCode| {
        common.say(
            serde_json::json!({"event": "code", "code": code.to_string()}),
            || format!("code: {code}\non the other machine run: p2phost receive {code}"),
        );
    };
    let verify = |verification: &str| common.show_verification(verification);
    let report = oneshot::send(common.options(), paths, words, show_code, verify)
        .await
        .map_err(|e| failure(&e))?;
    for (path, why) in &report.skipped {
        eprintln!(
            "warning: skipped {} ({why})",
            path.display().to_string().escape_debug()
        );
    }
    common.done(
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
    out: &std::path::Path,
    overwrite: bool,
    yes: bool,
    code: &str,
) -> Result<(), Failure> {
    let code = TransferCode::parse(code).map_err(|e| ("usage", 2, e.to_string()))?;
    let decide = |offer: &ValidManifest| -> Result<(), String> {
        common.say(
            serde_json::json!({"event": "offer", "files": offer.files.len(), "bytes": offer.total_bytes}),
            || describe(offer),
        );
        if yes {
            return Ok(());
        }
        if !std::io::stdin().is_terminal() {
            return Err("no terminal to ask on, and --yes was not given".into());
        }
        eprint!("accept? [y/N] ");
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if answer.trim().eq_ignore_ascii_case("y") || answer.trim().eq_ignore_ascii_case("yes") {
            Ok(())
        } else {
            Err("the receiver said no".into())
        }
    };
    let verify = |verification: &str| common.show_verification(verification);
    let report = oneshot::receive(common.options(), &code, out, overwrite, verify, decide)
        .await
        .map_err(|e| failure(&e))?;
    common.done(
        "received",
        report.files,
        report.bytes,
        report.wire_bytes,
        report.seconds,
    );
    Ok(())
}

fn describe(offer: &ValidManifest) -> String {
    let mut text = format!(
        "offer: {} files, {:.1} MiB",
        offer.files.len(),
        offer.total_bytes as f64 / (1024.0 * 1024.0)
    );
    for file in offer.files.iter().take(10) {
        // Names from the peer are escaped before they reach the terminal.
        text.push_str(&format!(
            "\n  {} ({} bytes)",
            file.path.to_string().escape_debug(),
            file.size
        ));
    }
    if offer.files.len() > 10 {
        text.push_str(&format!("\n  … and {} more", offer.files.len() - 10));
    }
    text
}
