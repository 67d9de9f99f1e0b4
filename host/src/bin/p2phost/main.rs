//! `p2phost`: send and receive files peer to peer. This binary reads the command line and shows
//! what happens; the work is in the library.

// Talking to the user on stdout and stderr is this binary's job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod console;
mod daemon_cmds;
mod identity_cmds;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Parser;
use p2phost::code::TransferCode;
use p2phost::oneshot::{self, Cancel, CodeChoice, EXIT_CANCELLED, OneshotError};
use tracing_subscriber::EnvFilter;

use args::{Cli, Command, Common, PluginAction};
use console::{Console, Style, Totals};
use p2phost::config::{Config, Location};
use p2phost::hooks::{HookChain, HookSpec, LuaConfig, WasmLimits};

/// The signaling server when neither --server nor P2PHOST_SERVER says otherwise.
const DEFAULT_SERVER: &str = "ws://127.0.0.1:8787";

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
    let cli = Cli::parse();
    // The daemon reports what it does; one-off transfers speak through their console.
    let default_filter = match cli.command {
        Command::Run { .. } => "warn,p2phost=info,p2p_signaling=info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let cancel = Cancel::new();
    let (mut console, result) = match cli.command {
        Command::Send {
            common,
            words,
            code,
            paths,
        } => {
            let mut console = console(&common, false, &cancel);
            runtime.spawn(stop_on_interrupt(cancel.clone()));
            let result =
                runtime.block_on(send(&common, &mut console, words, code, &paths, &cancel));
            (console, result)
        }
        Command::Receive {
            common,
            out,
            overwrite,
            yes,
            code,
        } => {
            let mut console = console(&common, yes, &cancel);
            runtime.spawn(stop_on_interrupt(cancel.clone()));
            let to = Destination {
                out: &out,
                overwrite,
                yes,
            };
            let result = runtime.block_on(receive(&common, &mut console, to, &code, &cancel));
            (console, result)
        }
        Command::Plugin {
            action: PluginAction::Inspect { path },
        } => std::process::exit(inspect(&path)),
        Command::Init { config } => exit_with(identity_cmds::init(config)),
        Command::Run {
            config,
            server,
            stun,
        } => exit_with(runtime.block_on(daemon_cmds::run(config, server, stun))),
        Command::Status { config, json } => {
            exit_with(runtime.block_on(daemon_cmds::status(config, json)))
        }
        Command::Id { config } => exit_with(identity_cmds::id(config)),
    };
    if let Err(failure) = result {
        console.error(failure.kind, &failure.message);
        std::process::exit(failure.exit);
    }
}

/// How long a transfer stopped by Ctrl-C may take to tell its peer before the process just ends.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// On Ctrl-C (or SIGTERM) the transfer stops and tells its peer; a second Ctrl-C, or a transfer
/// that has not ended within [`STOP_GRACE`], ends the process at once.
async fn stop_on_interrupt(cancel: Cancel) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    cancel.cancel();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = tokio::time::sleep(STOP_GRACE) => {}
    }
    eprintln!("\ninterrupted");
    std::process::exit(EXIT_CANCELLED);
}

/// Ends a command that reports through anyhow: its error chain on stderr, exit status 1... or 2
/// for a config file's mistake.
fn exit_with(result: anyhow::Result<()>) -> ! {
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            let config_error = e.downcast_ref::<p2phost::config::ConfigError>().is_some();
            let lines: Vec<String> = format!("{e:#}").lines().map(console::printable).collect();
            eprintln!("error: {}", lines.join("\n"));
            std::process::exit(if config_error { USAGE } else { 1 });
        }
    }
}

fn console(common: &Common, yes: bool, cancel: &Cancel) -> Console {
    let style = if common.json {
        Style::Json
    } else if common.quiet {
        Style::Quiet
    } else {
        Style::Text
    };
    // The receiver needs the same server, and the other machine may not have the same
    // P2PHOST_SERVER: name it unless it is the built-in default.
    let receive_flags = if common.server == DEFAULT_SERVER {
        String::new()
    } else {
        format!(" --server {}", common.server)
    };
    Console::new(style, common.verify, yes, receive_flags, cancel.clone())
}

async fn send(
    common: &Common,
    console: &mut Console,
    words: u16,
    code: Option<String>,
    paths: &[PathBuf],
    cancel: &Cancel,
) -> Result<(), Failure> {
    let options = common.session_options().map_err(Failure::usage)?;
    let code = match code {
        Some(text) => CodeChoice::Given(args::chosen_code(&text).map_err(Failure::usage)?),
        None => CodeChoice::Generate {
            words: usize::from(words),
        },
    };
    let hooks = hooks(common)?;
    let report = oneshot::send(options, paths, code, hooks, console, cancel).await?;
    console.done(
        "sent",
        &Totals::new(
            report.files,
            report.bytes,
            report.resumed_bytes,
            report.wire_bytes,
            report.seconds,
        ),
    );
    Ok(())
}

/// Where `receive` puts the files, and how it takes the offer.
struct Destination<'a> {
    out: &'a Path,
    overwrite: bool,
    yes: bool,
}

async fn receive(
    common: &Common,
    console: &mut Console,
    to: Destination<'_>,
    code: &str,
    cancel: &Cancel,
) -> Result<(), Failure> {
    let Destination {
        out,
        overwrite,
        yes,
    } = to;
    let options = common.session_options().map_err(Failure::usage)?;
    let code = TransferCode::parse(code).map_err(|e| Failure::usage(e.to_string()))?;
    if !yes && !std::io::stdin().is_terminal() {
        // Said before connecting: connecting would use up the sender's one-time code.
        return Err(Failure {
            kind: "refused",
            exit: 4,
            message: "no terminal to ask on: pass --yes to accept the offer without asking".into(),
        });
    }
    let hooks = hooks(common)?;
    let report = oneshot::receive(options, &code, out, overwrite, hooks, console, cancel).await?;
    console.done(
        "received",
        &Totals::new(
            report.files,
            report.bytes,
            report.resumed_bytes,
            report.wire_bytes,
            report.seconds,
        ),
    );
    Ok(())
}

/// The plugins and scripts of the config file, then of the command line, loaded (compiled,
/// checked) and instantiated for this transfer.
fn hooks(common: &Common) -> Result<HookChain, Failure> {
    let unusable = |message: String| Failure {
        kind: "plugin",
        exit: 8,
        message,
    };
    let mut specs: Vec<(Option<Location>, HookSpec)> = Vec::new();
    if let Some(path) = &common.config {
        let config = Config::load(path).map_err(|e| Failure {
            kind: "config",
            exit: USAGE,
            message: e.to_string(),
        })?;
        specs.extend(config.hooks.into_iter().map(|e| (Some(e.at), e.spec)));
    }
    for path in &common.plugins {
        let spec = HookSpec::Plugin {
            path: path.clone(),
            settings: Vec::new(),
            limits: WasmLimits::default(),
        };
        specs.push((None, spec));
    }
    for path in &common.scripts {
        let spec = HookSpec::Script {
            path: path.clone(),
            config: LuaConfig::default(),
        };
        specs.push((None, spec));
    }
    let names: Vec<String> = specs.iter().map(|(_, spec)| hook_name(spec)).collect();
    let mut engine = None;
    let mut factories = Vec::with_capacity(specs.len());
    for ((at, mut spec), name) in specs.into_iter().zip(&names) {
        for (key, value) in &common.settings {
            // `NAME.KEY` is for the plugin or script called NAME only; a plain KEY is for all.
            match key.split_once('.') {
                Some((scope, key)) if names.iter().any(|n| n == scope) => {
                    if scope == name {
                        spec.set(key, value);
                    }
                }
                _ => spec.set(key, value),
            }
        }
        let factory = spec.load(&mut engine).map_err(|e| {
            unusable(match &at {
                Some(at) => format!("{at}: {e}"),
                None => e.to_string(),
            })
        })?;
        factories.push(factory);
    }
    let hooks = factories
        .iter()
        .map(|factory| factory.instantiate())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unusable(e.to_string()))?;
    Ok(HookChain::new(hooks))
}

/// The name a plugin or script goes by in settings and errors: its file stem.
fn hook_name(spec: &HookSpec) -> String {
    spec.path()
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `p2phost plugin inspect FILE.wasm`: the exit status.
fn inspect(path: &Path) -> i32 {
    match p2phost::hooks::wasm::inspect(path) {
        Ok(description) => {
            let hooks = [
                ("pre-send", description.hooks.pre_send),
                ("chunk", description.hooks.chunk),
                ("complete", description.hooks.complete),
            ]
            .iter()
            .filter(|(_, on)| *on)
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ");
            println!("name:        {}", console::printable(&description.name));
            println!("version:     {}", console::printable(&description.version));
            println!(
                "hooks:       {}",
                if hooks.is_empty() { "none" } else { &hooks }
            );
            println!("needs bytes: {}", description.needs_bytes);
            println!(
                "encoding:    {}",
                description
                    .encoding
                    .as_deref()
                    .map_or_else(|| "none".to_owned(), console::printable)
            );
            println!(
                "contract:    {}@{}",
                p2phost::hooks::wasm::WIT_PACKAGE,
                p2phost::hooks::wasm::WIT_VERSION
            );
            0
        }
        Err(e) => {
            eprintln!("error: {}", console::printable(&e.to_string()));
            8
        }
    }
}
