//! The `kiln` command line: raw arguments ([`cli`]) become one validated
//! options value ([`options`]), which runs one command ([`commands`]).
//! Library crates return typed errors; only the binary turns them into
//! messages and exit codes.
//!
//! Exit codes: 0 success; 1 the checked thing is bad (an invalid block, a
//! backend failing its self-check); 2 usage errors and unreadable input.

mod cli;
mod commands;
mod logger;
mod options;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Cmd, Level};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Bench { backend, threads, seconds, json, no_reference, gpu } => {
            logger::init(Level::Info);
            commands::bench::run(backend.as_deref(), threads, seconds, json, no_reference, &gpu)
        }
        Cmd::Devices => {
            logger::init(Level::Info);
            commands::devices::run()
        }
        Cmd::Mine(args) => mine(args),
        Cmd::VerifyBlock { files, chain, threads, no_schnorr_batch, all_scripts, json } => {
            logger::init(Level::Info);
            let threads = threads.into();
            commands::verify::run_verify_block(&files, &chain, threads, !no_schnorr_batch, all_scripts, json)
        }
        Cmd::BenchVerify { files, threads, runs, json } => {
            logger::init(Level::Info);
            commands::verify::run_bench_verify(&files.block, &files.prevouts, threads.into(), runs.into(), json)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kiln: {e}");
            match e.downcast_ref::<kiln_miner::MinerError>() {
                // A kernel that fails its self-check is "the checked thing is bad".
                Some(kiln_miner::MinerError::SelfCheck(_)) => ExitCode::from(1),
                _ => ExitCode::from(2),
            }
        }
    }
}

/// Rust ignores SIGPIPE, so `kiln verify-block … | head -1` would panic in
/// `println!` once `head` exits. Restore the default, as Unix tools have it:
/// the process ends quietly when its reader is gone.
fn restore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL at startup, before any
    // other thread exists, has no preconditions; no handler code is installed.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn mine(args: cli::MineArgs) -> AnyResult<ExitCode> {
    let file = match &args.config {
        Some(p) => options::ConfigFile::read(p)?,
        None => options::ConfigFile::default(),
    };
    let opts = options::mine_options(args, file)?;
    logger::init(opts.log_level);
    commands::mine::run(opts)
}
