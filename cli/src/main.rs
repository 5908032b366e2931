//! `promshm`: the operator's command for promshm shared metrics areas.
//!
//! Every subcommand opens the area read-only: it never registers, writes,
//! reaps or takes a worker slot, so it can run next to the workers (or as a
//! separate exporter user with read permission only).

mod auth;
mod body;
mod client;
mod common;
mod dump;
mod files;
mod http;
mod inspect;
mod push;
mod remote_write;
mod serve;
mod sigbus;
mod textfile;

use clap::{Parser, Subcommand};

use common::{exit, CliError, CliResult};

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 other failure, 2 bad usage, 3 area missing or unreadable
(or its file lock held by another process for more than 2 s),
4 not a compatible promshm area (a symbolic link, FIFO or other non-regular file,
wrong format version, damaged file),
5 endpoint unreachable or request rejected,
6 area file refused: owned by another user (see --allow-owner) or writable by
its group or every user (see --allow-group-write, --allow-other-write).";

/// Inspect a promshm shared metrics area, serve it over HTTP, write node_exporter
/// textfiles, push it to a Pushgateway or to Prometheus remote-write.
#[derive(Debug, Parser)]
#[command(name = "promshm", version, after_help = AFTER_HELP, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    #[command(flatten)]
    files: files::FileArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Show format version, pages, families, series, worker slots and self-metric counters.
    #[command(after_help = AFTER_HELP)]
    Inspect(inspect::Args),
    /// Print the area in Prometheus text 0.0.4 or OpenMetrics 1.0.
    #[command(after_help = AFTER_HELP)]
    Dump(dump::Args),
    /// Serve the area over HTTP(S): /metrics (content negotiation, gzip) and /healthz.
    #[command(after_help = AFTER_HELP)]
    Serve(serve::Args),
    /// Write a node_exporter textfile-collector file atomically, once or periodically.
    #[command(after_help = AFTER_HELP)]
    Textfile(textfile::Args),
    /// Push the area to a Prometheus Pushgateway, once or periodically.
    #[command(after_help = AFTER_HELP)]
    Push(push::Args),
    /// Send the area with Prometheus remote-write 1.0 (protobuf + snappy), once or periodically.
    #[command(after_help = AFTER_HELP)]
    RemoteWrite(remote_write::Args),
}

fn run(cli: Cli) -> CliResult {
    let files = &cli.files;
    match cli.cmd {
        Cmd::Inspect(a) => inspect::run(a, files),
        Cmd::Dump(a) => dump::run(a, files),
        Cmd::Serve(a) => serve::run(a, files),
        Cmd::Textfile(a) => textfile::run(a, files),
        Cmd::Push(a) => push::run(a, files),
        Cmd::RemoteWrite(a) => remote_write::run(a, files),
    }
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version exit 0; usage errors exit 2.
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    // A file truncated under a mapping must not kill the command (see sigbus.rs).
    if let Err(e) = sigbus::install() {
        eprintln!("promshm: cannot install the SIGBUS handler: {e}");
        std::process::exit(exit::FAILURE);
    }
    if let Err(CliError { code, msg }) = run(cli) {
        eprintln!("promshm: {msg}");
        std::process::exit(code);
    }
}
