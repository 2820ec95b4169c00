//! kiln's log lines on the `log` facade, so that the libraries' own lines
//! (wgpu, naga, rustls) reach the same place: `HH:MM:SS LEVEL message` on
//! stderr, one plain line each, for a person watching a miner.
//!
//! Filtering: `RUST_LOG` when set (`env_logger`'s syntax), else kiln's crates
//! at the chosen level and the libraries at `warn`, or at `debug` when the
//! chosen level is `debug`.

use std::io::Write;

use crate::cli::Level;

fn filter(l: Level) -> log::LevelFilter {
    match l {
        Level::Error => log::LevelFilter::Error,
        Level::Warn => log::LevelFilter::Warn,
        Level::Info => log::LevelFilter::Info,
        Level::Debug => log::LevelFilter::Debug,
    }
}

/// Installs the logger (once; later calls are ignored).
pub fn init(level: Level) {
    let kiln = filter(level);
    let libraries = if level == Level::Debug { log::LevelFilter::Debug } else { log::LevelFilter::Warn };
    let mut b = env_logger::Builder::new();
    b.filter_level(libraries).filter_module("kiln", kiln);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    b.format(|out, record| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let (h, m, s) = ((now / 3600) % 24, (now / 60) % 60, now % 60);
        let tag = match record.level() {
            log::Level::Error => "ERROR",
            log::Level::Warn => "WARN ",
            log::Level::Info => "INFO ",
            log::Level::Debug => "DEBUG",
            log::Level::Trace => "TRACE",
        };
        writeln!(out, "{h:02}:{m:02}:{s:02} {tag} {}", record.args())
    });
    b.target(env_logger::Target::Stderr);
    let _ = b.try_init();
}
