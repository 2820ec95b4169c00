//! A real crash: a child process (this test binary, re-run with an
//! environment variable) puts blocks in a loop and prints each acknowledged
//! hash; the parent SIGKILLs it and checks every printed block.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use kiln_store::{BlockStore, StoreOptions};

use crate::{TempDir, synth};

const CHILD_ENV: &str = "KILN_STORE_KILL_CHILD";
const OPTS: StoreOptions = StoreOptions { max_file_size: 256 << 10 };

/// The child's body; does nothing in a normal test run.
#[test]
fn kill_child_writer() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (dir, first) = spec.split_once('|').unwrap();
    let first: u64 = first.parse().unwrap();
    let store = BlockStore::open_with(dir, OPTS).unwrap();
    let mut out = std::io::stdout().lock();
    for i in first.. {
        let hash = store.put(&synth(i)).unwrap();
        writeln!(out, "ACK {i} {hash}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_loses_no_acknowledged_block() {
    let dir = TempDir::new("kill");
    let mut total = 0;
    for round in 0..3u64 {
        let first = round * 1_000_000;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "kill::kill_child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{}|{first}", dir.path().display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    // libtest's "test NAME ... " precedes the first line.
                    let mut w = l[l.find("ACK ")? + 4..].split(' ');
                    Some((w.next()?.parse::<u64>().ok()?, w.next()?.to_string()))
                })
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(1000 + 137 * round));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success());
        let acked = reader.join().unwrap();
        assert!(!acked.is_empty(), "round {round}: the child acknowledged nothing");

        let store = BlockStore::open_with(dir.path(), OPTS).unwrap();
        for (i, hash) in &acked {
            let b = synth(*i);
            assert_eq!(b.block_hash().to_string(), *hash);
            let got = store.get(&b.block_hash()).unwrap();
            assert_eq!(got.as_ref(), Some(&b), "round {round}: block {i} lost");
        }
        let len = store.len().unwrap();
        // Acknowledged, plus at most the one put in flight when killed.
        assert!(
            len >= total + acked.len() as u64 && len <= total + acked.len() as u64 + 1,
            "round {round}: {len} stored, {total} before, {} acknowledged",
            acked.len()
        );
        // Writing continues after the crash.
        let next = synth(first + 900_000);
        store.put(&next).unwrap();
        assert_eq!(store.get(&next.block_hash()).unwrap().unwrap(), next);
        total = store.len().unwrap();
        eprintln!("round {round}: {} acknowledged, store holds {total}", acked.len());
    }
}
