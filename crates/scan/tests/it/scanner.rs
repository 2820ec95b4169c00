//! The threaded CPU scanner: finds real nonces, splits the range, switches work.

use std::time::{Duration, Instant};

use kiln_hash::Backend;
use kiln_scan::ScanEvent;
use kiln_scan::cpu::CpuScanner;
use kiln_scan::selfcheck::real_header;
use kiln_work::{Header, Target, Work};

#[test]
fn threads_find_the_real_nonce_and_exhaust_their_slices() {
    let bytes = real_header(0);
    let h = Header::parse(&bytes).unwrap();
    let target = h.bits.to_target().unwrap();
    for b in Backend::available() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let s = CpuScanner::start(b, 3, tx);
        let start = h.nonce - 50_001;
        s.set_work(Work::with_range(7, bytes, target, start, start as u64 + 100_003));
        let mut found = Vec::new();
        let mut exhausted = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        while exhausted < 3 {
            match rx.recv_deadline(deadline).expect("scanner finished in time") {
                ScanEvent::Found { work_id, nonce, .. } => found.push((work_id, nonce)),
                ScanEvent::Exhausted { .. } => exhausted += 1,
                ev => panic!("unexpected {ev:?}"),
            }
        }
        assert_eq!(found, [(7, h.nonce)], "{b}");
        assert_eq!(s.hashes(), 100_003, "{b}: every nonce hashed exactly once");
    }
}

#[test]
fn new_work_replaces_old_and_nothing_old_follows_the_switch() {
    let bytes = real_header(1);
    let easy = Target::from_difficulty(kiln_work::Difficulty(1.0 / 4096.0)).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let s = CpuScanner::start(Backend::detect(), 2, tx);
    s.set_work(Work::new(1, bytes, easy));
    // Wait until old work produces shares.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let ScanEvent::Found { work_id: 1, .. } = rx.recv_deadline(deadline).unwrap() {
            break;
        }
    }
    let mut other = bytes;
    other[68] ^= 1; // a different ntime: different work
    let switched_at = Instant::now();
    let epoch = s.set_work(Work::new(2, other, easy));
    while !s.all_switched_to(epoch) {
        assert!(switched_at.elapsed() < Duration::from_secs(2), "switch took too long");
        std::thread::yield_now();
    }
    // Everything still queued may be old; drain it, then only work 2 may appear.
    while rx.try_recv().is_ok() {}
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut new_shares = 0;
    while new_shares < 20 {
        match rx.recv_deadline(deadline).unwrap() {
            ScanEvent::Found { work_id, nonce, hash, .. } => {
                assert_eq!(work_id, 2, "old work reported after the switch was acknowledged");
                let w = Work::new(2, other, easy);
                assert_eq!(w.check(nonce), Some(hash));
                new_shares += 1;
            }
            ScanEvent::HardwareError { .. } => panic!("hardware error"),
            ScanEvent::Exhausted { .. } => {}
        }
    }
}
