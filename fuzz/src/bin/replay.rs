//! `replay TARGET PATH...`: runs a target's body on each file (a directory:
//! each file in it), without AFL. A crash AFL found reproduces here with a
//! readable panic message and, with RUST_BACKTRACE=1, a backtrace.

use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: replay TARGET PATH... (targets: stratum_session stratum_codec block_reader prevouts_reader p2p_peer p2p_transport rpc_response)";
    let name = args.next().expect(usage);
    let body = kiln_fuzz::target(&name).expect(usage);
    kiln_fuzz::init();
    let mut files: Vec<PathBuf> = Vec::new();
    for a in args {
        let p = PathBuf::from(a);
        if p.is_dir() {
            let mut in_dir: Vec<PathBuf> =
                std::fs::read_dir(&p).expect("readable directory").map(|e| e.expect("entry").path()).collect();
            in_dir.retain(|f| f.is_file());
            in_dir.sort();
            files.extend(in_dir);
        } else {
            files.push(p);
        }
    }
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        eprintln!("replay {name}: {} ({} bytes)", f.display(), bytes.len());
        body(&bytes);
    }
    println!("replay {name}: {} input(s), no crash", files.len());
}
