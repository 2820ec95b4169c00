//! A hostile or broken pool, and hostile API clients (issue 12): every
//! resource kiln spends on what the network sends is bounded, and nothing
//! the network does keeps kiln from stopping on time.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kiln_miner::engine::{Engine, SourceEvent};
use kiln_miner::stats::Stats;
use kiln_scan::ScanEvent;
use kiln_testkit::pool::{Behavior, TestPool};
use kiln_work::{Target, Work};

use crate::stratum::{FakeScanner, engine, fast_client, start_miner};

const T: Duration = Duration::from_secs(30);

// ---- 5. Text from the network, logged ----

#[test]
fn pool_text_is_escaped_before_it_is_logged() {
    crate::logcap::start();
    let marker = "kiln-escape-marker";
    let evil = format!("{marker}\u{1b}[2J\u{1b}]0;owned\u{7}\nINFO share accepted (difficulty 1e9)");
    let pool = TestPool::start(Behavior { show_message: Some(evil), ..Behavior::default() });
    let m = start_miner(&[pool.url()], fast_client(), None);
    pool.wait_for("a share", T, |l| l.valid() >= 1);
    m.stop();
    let lines = crate::logcap::lines_with(marker);
    assert!(!lines.is_empty(), "the message was logged");
    for l in lines {
        assert!(!l.chars().any(char::is_control), "control characters reached the log: {l:?}");
    }
}
