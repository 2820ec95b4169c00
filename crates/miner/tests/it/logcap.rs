//! Captures every log record of this test binary, so tests can check what
//! kiln writes to its log (escaping, wording, order).

use std::sync::{Mutex, OnceLock};

struct Capture(Mutex<Vec<String>>);

/// Lines kept at most; the oldest go first.
const KEEP: usize = 200_000;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() >= KEEP {
            v.drain(..KEEP / 2);
        }
        v.push(format!("{} {}", r.level(), r.args()));
    }
    fn flush(&self) {}
}

static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();

/// Installs the capture (once per binary).
pub fn start() {
    CAPTURE.get_or_init(|| {
        let c: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        if log::set_logger(c).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
        c
    });
}

/// Every captured line containing `needle`.
pub fn lines_with(needle: &str) -> Vec<String> {
    let c = CAPTURE.get().expect("logcap::start first");
    c.0.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|l| l.contains(needle)).cloned().collect()
}
