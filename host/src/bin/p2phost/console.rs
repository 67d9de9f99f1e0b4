//! What the user sees: text lines and a progress bar on a terminal, or newline-delimited JSON
//! events with `--json` (every event is documented in the README).

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use p2phost::code::TransferCode;
use p2phost::oneshot::{Cancel, Observer};
use p2phost::transfer::ValidManifest;
use serde_json::json;

/// How often `--json` reports progress.
const JSON_PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Names listed in the receiver's offer before "… and N more".
const OFFER_LINES: usize = 10;

/// The form of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Lines for people, a progress bar when stderr is a terminal.
    Text,
    /// Newline-delimited JSON events on stdout.
    Json,
    /// Errors only.
    Quiet,
}

/// The binary's [`Observer`]: prints what happens in the chosen [`Style`].
pub(crate) struct Console {
    style: Style,
    /// Show the verification string.
    verify: bool,
    /// Accept the offer without asking (receiver).
    yes: bool,
    /// The flags the receiver needs besides the code, for the hint under the sender's code.
    receive_flags: String,
    bar: Option<ProgressBar>,
    total: u64,
    last_json_progress: Option<Instant>,
    /// Thrown by Ctrl-C: a question waiting for its answer gives up.
    cancel: Cancel,
}

impl Console {
    pub(crate) fn new(
        style: Style,
        verify: bool,
        yes: bool,
        receive_flags: String,
        cancel: Cancel,
    ) -> Self {
        Self {
            style,
            verify,
            yes,
            receive_flags,
            bar: None,
            total: 0,
            last_json_progress: None,
            cancel,
        }
    }

    /// A JSON event or a line of text, as the style asks.
    fn say(&self, event: serde_json::Value, text: impl FnOnce() -> String) {
        let mut out = std::io::stdout().lock();
        match self.style {
            Style::Json => {
                let _ = writeln!(out, "{event}");
            }
            Style::Text => {
                let line = text();
                if line.is_empty() {
                    return;
                }
                match &self.bar {
                    // Printed above the bar, so the bar is not torn.
                    Some(bar) => bar.suspend(|| writeln!(out, "{line}")).unwrap_or(()),
                    None => {
                        let _ = writeln!(out, "{line}");
                    }
                }
            }
            Style::Quiet => {}
        }
        let _ = out.flush();
    }

    /// The closing event (JSON) or summary line (text) of a successful transfer.
    pub(crate) fn done(&mut self, verb: &str, totals: &Totals) {
        self.clear_bar();
        self.say(
            json!({"event": "done", "files": totals.files, "bytes": totals.bytes,
                "resumed_bytes": totals.resumed, "wire_bytes": totals.wire,
                "seconds": totals.seconds}),
            || summary(verb, totals),
        );
    }

    /// The closing event of a failure; the message itself goes to stderr in every style.
    pub(crate) fn error(&mut self, kind: &str, message: &str) {
        self.clear_bar();
        if self.style == Style::Json {
            self.say(
                json!({"event": "error", "kind": kind, "message": message}),
                String::new,
            );
        }
        // The message may quote the peer or the server: no control characters reach the terminal.
        // A config error's caret lines are ours (its quoted line is cleaned when it is made).
        if kind == "config" {
            let lines: Vec<String> = message.lines().map(printable).collect();
            eprintln!("error: {}", lines.join("\n"));
        } else {
            eprintln!("error: {}", printable(message));
        }
    }

    fn clear_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn ask(&self) -> Result<(), String> {
        if !std::io::stdin().is_terminal() {
            return Err("no terminal to ask on, and --yes was not given".into());
        }
        eprint!("accept? [y/N] ");
        let answer = self
            .read_answer()
            .ok_or("cancelled at the question (Ctrl-C)")?;
        let answer = answer.trim();
        if answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes") {
            Ok(())
        } else {
            Err("the receiver said no".into())
        }
    }
}

impl Console {
    /// A line from the terminal, or `None` once Ctrl-C was pressed: the read happens on a thread
    /// of its own, since a blocked read cannot be interrupted.
    fn read_answer(&self) -> Option<String> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut answer = String::new();
            let _ = std::io::stdin().lock().read_line(&mut answer);
            let _ = tx.send(answer);
        });
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(answer) => return Some(answer),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if !self.cancel.is_cancelled() => {}
                Err(_) => return None,
            }
        }
    }
}

impl Observer for Console {
    fn hook_failed(&mut self, error: &p2phost::hooks::HookError) {
        let message = printable(&error.to_string());
        if self.style == Style::Json {
            self.say(
                json!({"event": "hook_failed", "message": message}),
                String::new,
            );
        } else {
            eprintln!("warning: {message}");
        }
    }

    fn skipped(&mut self, path: &std::path::Path, why: &str) {
        let path = path.display().to_string();
        if self.style == Style::Json {
            self.say(
                json!({"event": "skipped", "path": path, "why": why}),
                String::new,
            );
        }
        // Warnings go to stderr in every style but JSON's, names escaped like the peer's.
        if self.style != Style::Json {
            eprintln!("warning: skipped {} ({why})", printable(&path));
        }
    }

    fn lan_mode(&mut self, why: &str) {
        self.say(json!({"event": "lan", "why": why}), || {
            format!(
                "{why}: serving this transfer on the local network instead (LAN mode; the \
                 receiver must be on this network too)"
            )
        });
    }

    fn code(&mut self, code: &TransferCode) {
        if self.style == Style::Quiet {
            // Even --quiet must say the code: without it nobody can receive.
            println!("{code}");
            return;
        }
        self.say(json!({"event": "code", "code": code.to_string()}), || {
            format!(
                "code: {code}\non the other machine run: p2phost receive{} {code}",
                self.receive_flags
            )
        });
    }

    fn offer_ready(&mut self, files: usize, bytes: u64) {
        // For scripts only: a person has nothing to do about it.
        if self.style == Style::Json {
            self.say(
                json!({"event": "ready", "files": files, "bytes": bytes}),
                String::new,
            );
        }
    }

    fn connected(&mut self, verification: &str) {
        if self.verify {
            self.say(json!({"event": "verify", "string": verification}), || {
                format!("verification: {verification} (the other side must show the same)")
            });
        }
    }

    fn path(&mut self, path: &p2phost::session::NetworkPath) {
        self.say(
            json!({"event": "path", "path": path.kind(), "local": path.local,
                "remote": path.remote, "protocol": path.protocol, "relay": path.relay}),
            || format!("connected {path}"),
        );
    }

    fn offer(&mut self, offer: &ValidManifest) -> Result<(), String> {
        self.say(
            json!({"event": "offer", "files": offer.files.len(), "bytes": offer.total_bytes}),
            || describe(offer),
        );
        if self.yes {
            return Ok(());
        }
        if self.style == Style::Quiet {
            // Nobody accepts what they were not shown.
            eprintln!("{}", describe(offer));
        }
        self.ask()
    }

    fn started(&mut self, total: u64, resumed: u64) {
        self.total = total;
        self.say(
            json!({"event": "start", "bytes": total, "resumed": resumed}),
            || match resumed {
                0 => String::new(),
                _ => format!("resuming: {} already here", size(resumed)),
            },
        );
        if self.style == Style::Text && std::io::stderr().is_terminal() {
            let style = ProgressStyle::with_template(
                "{wide_bar} {binary_bytes}/{binary_total_bytes} {decimal_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
                .with_style(style);
            bar.set_position(resumed);
            self.bar = Some(bar);
        }
    }

    fn progress(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
        if self.style == Style::Json
            && self
                .last_json_progress
                .is_none_or(|last| last.elapsed() >= JSON_PROGRESS_EVERY)
        {
            self.last_json_progress = Some(Instant::now());
            self.say(
                json!({"event": "progress", "bytes": done, "total": self.total}),
                String::new,
            );
        }
    }
}

/// Sizes in binary units (MiB) everywhere; rates in MB/s everywhere (as the summary
/// line has them).
fn size(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

/// `text` with control characters escaped (`\u{1b}`), everything else as it is: safe for a
/// terminal, and still readable for quotes, backslashes and non-ASCII names.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}') {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// What a finished transfer moved, for its closing line.
pub(crate) struct Totals {
    pub(crate) files: u64,
    /// File bytes in the offer.
    pub(crate) bytes: u64,
    /// Of those, bytes the receiver had already.
    pub(crate) resumed: u64,
    /// Bytes of file data on the data channel, as encoded.
    pub(crate) wire: u64,
    pub(crate) seconds: f64,
}

/// `sent 3 files, 64.00 MiB in 0.42 s, 152 MB/s, 20.1 MiB on the wire`: the rate is over the file
/// bytes moved (resumed ones excluded); the wire figure appears when encoding changed it.
impl Totals {
    pub(crate) fn new(files: u64, bytes: u64, resumed: u64, wire: u64, seconds: f64) -> Self {
        Self {
            files,
            bytes,
            resumed,
            wire,
            seconds,
        }
    }
}

fn summary(verb: &str, totals: &Totals) -> String {
    let noun = if totals.files == 1 { "file" } else { "files" };
    let moved = totals.bytes.saturating_sub(totals.resumed);
    let rate = moved as f64 / totals.seconds.max(1e-6) / 1e6;
    let mut line = format!(
        "{verb} {} {noun}, {} in {:.2} s, {rate:.0} MB/s",
        totals.files,
        size(moved),
        totals.seconds
    );
    if totals.resumed > 0 {
        line.push_str(&format!(", {} resumed", size(totals.resumed)));
    }
    if totals.wire != moved {
        line.push_str(&format!(", {} on the wire", size(totals.wire)));
    }
    line
}

fn describe(offer: &ValidManifest) -> String {
    let count = offer.files.len();
    let noun = if count == 1 { "file" } else { "files" };
    let mut text = format!("offer: {count} {noun}, {}", size(offer.total_bytes));
    for file in offer.files.iter().take(OFFER_LINES) {
        // Names from the peer are escaped before they reach the terminal.
        text.push_str(&format!(
            "\n  {} ({})",
            printable(&file.path.to_string()),
            size(file.size)
        ));
    }
    if offer.files.len() > OFFER_LINES {
        text.push_str(&format!(
            "\n  … and {} more",
            offer.files.len() - OFFER_LINES
        ));
    }
    text
}
