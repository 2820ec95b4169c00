//! `kiln verify-block` and `kiln bench-verify`.

use std::path::Path;

use std::process::ExitCode;

use crate::AnyResult;

pub fn run_verify_block(block: &Path, prevouts: &Path, threads: usize, batch: bool, json: bool) -> AnyResult<ExitCode> {
    let started = std::time::Instant::now();
    let b = kiln_validate::read_block(block)?;
    let p = kiln_validate::read_prevouts(prevouts)?;
    let r = kiln_validate::verify::validate_with(&b, &p, threads, batch)?;
    let total_ms = started.elapsed().as_secs_f64() * 1e3;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        let c = &r.block;
        let yes = |ok: bool| if ok { "ok" } else { "FAILED" };
        println!("block {}", c.hash);
        println!("  height (BIP34)       {:?}", c.bip34);
        println!(
            "  proof of work        {} (nBits {}){}",
            yes(c.pow_ok),
            c.bits,
            c.pow_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        );
        println!("  merkle root          {}", yes(c.merkle_ok));
        println!("  witness commitment   {:?}", c.witness_commitment);
        println!("  transactions         {}", r.transactions);
        println!("  inputs               {} ({} signature verifications)", r.inputs, r.signatures);
        for (t, n) in &r.inputs_by_type {
            println!("    {t:<28} {n:>6}");
        }
        println!(
            "  time                 {total_ms:.1} ms (extract {:.1} ms, verify {:.1} ms)",
            r.extract_ms, r.verify_ms
        );
        for bad in &r.bad_inputs {
            println!(
                "  BAD INPUT tx {} input {} (txid {}, {}): {}",
                bad.tx_index, bad.input_index, bad.txid, bad.script_type, bad.reason
            );
        }
        println!("{}", if r.is_valid() { "VALID" } else { "INVALID" });
    }
    Ok(if r.is_valid() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub fn run_bench_verify(block: &Path, prevouts: &Path, threads: usize, runs: usize, json: bool) -> AnyResult<ExitCode> {
    let bytes = kiln_validate::read_file(block)?;
    let p = kiln_validate::read_prevouts(prevouts)?;
    eprintln!("timing {runs} runs of bare verification and of the full pipeline …");
    let r = kiln_validate::bench::bench_verify(&bytes, &p, threads, runs)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "inputs {}: {} ECDSA, {} Schnorr signatures; {} inputs by the script interpreter",
            r.inputs, r.ecdsa, r.schnorr, r.interpreter
        );
        println!(
            "bare libsecp256k1, 1 thread     {:>9.2} ms  ({:.2} µs per signature)",
            r.bare_single_thread_ms, r.bare_us_per_sig
        );
        if let Some(speedup) = r.schnorr_batch_speedup {
            println!(
                "  of which Schnorr, 1 thread    {:>9.2} ms  one by one; {:.2} ms as one BIP340 batch ({speedup:.2}x)",
                r.schnorr_one_by_one_ms, r.schnorr_batch_ms
            );
        }
        println!(
            "kiln pipeline, {} threads        {:>9.2} ms  (decode, checks, sighash, extraction, verification)",
            r.threads, r.pipeline_ms
        );
        println!("  with Schnorr one by one       {:>9.2} ms", r.pipeline_one_by_one_ms);
        println!(
            "ratio bare ÷ (threads × pipeline) {:.3}   (1.0 = the pipeline costs nothing beyond the signatures)",
            r.ratio
        );
        println!("medians of {} runs", r.runs);
    }
    Ok(ExitCode::SUCCESS)
}
