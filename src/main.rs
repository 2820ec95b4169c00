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
    private_runtime_dir();
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
        Cmd::Mine(args) => mine(*args),
        Cmd::Node(args) => {
            logger::init(args.log_level.unwrap_or(Level::Info));
            commands::node::run(args)
        }
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

/// Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid or not set" when
/// the variable is missing (containers, cron, ssh without a session), though
/// nothing is wrong for headless compute. When it is unset, point it at a
/// private per-user directory (`$TMPDIR/kiln-runtime-UID`, mode 0700), as a
/// login session would; one that is not ours or not private is not used.
fn private_runtime_dir() {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("kiln-runtime-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    // Another user could have made it first: use it only if it is ours and private.
    let Ok(m) = std::fs::symlink_metadata(&dir) else { return };
    if !m.is_dir() || m.uid() != uid || m.permissions().mode() & 0o077 != 0 {
        return;
    }
    // SAFETY: called at the start of main, before any other thread exists, so
    // nothing reads the environment concurrently.
    unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
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
