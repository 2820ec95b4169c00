//! `kiln verify-block` and `kiln bench-verify`.

use std::path::Path;

use kiln_validate::{HeaderTimes, Options};

use crate::cli::{BlockFiles, ChainArgs};

use std::process::ExitCode;

use crate::AnyResult;

pub fn run_verify_block(
    files: &BlockFiles,
    chain: &ChainArgs,
    threads: usize,
    batch: bool,
    all_scripts: bool,
    json: bool,
) -> AnyResult<ExitCode> {
    let started = std::time::Instant::now();
    let b = kiln_validate::read_block(&files.block)?;
    let inputs: usize = b.txdata.iter().skip(1).map(|t| t.input.len()).sum();
    let p = kiln_validate::read_spent_for(&files.prevouts, inputs)?;
    let height = chain.height.or(kiln_validate::block::coinbase_height(&b));
    let headers = match (&chain.headers, height) {
        (Some(path), Some(h)) => Some(HeaderTimes::read(path, &b, h)?),
        (Some(_), None) => return Err("--headers needs the block's height (--height for a block without BIP34)".into()),
        (None, _) => None,
    };
    let mtp = |h: u32| headers.as_ref().and_then(|t| t.mtp_at(h));
    let opts = Options {
        threads,
        schnorr_batch: batch,
        network: chain.chain,
        height: chain.height,
        median_time_past: height.and_then(|h| h.checked_sub(1)).and_then(mtp),
        mtp_of_height: headers.as_ref().map(|_| &mtp as &(dyn Fn(u32) -> Option<u32> + Sync)),
        all_scripts,
    };
    let origins = p.origins_known.then_some(&p.origins[..]);
    let r = kiln_validate::validate_block(&b, &p.txouts, origins, &opts)?;
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
        println!(
            "  consensus rules      {} (fees {} sat, weight {}, sigop cost {})",
            yes(r.rules.violations.is_empty()),
            r.rules.fees,
            r.rules.weight,
            r.rules.sigop_cost
        );
        println!("  transactions         {}", r.transactions);
        println!("  inputs               {} ({} signature verifications)", r.inputs, r.signatures);
        for (t, n) in &r.inputs_by_type {
            println!("    {t:<28} {n:>6}");
        }
        println!(
            "  time                 {total_ms:.1} ms (extract {:.1} ms, verify {:.1} ms)",
            r.extract_ms, r.verify_ms
        );
        if let Some(why) = &r.scripts_skipped {
            println!("  {why}");
        }
        for v in &r.rules.violations {
            let at = match (v.tx, v.input) {
                (Some(t), Some(i)) => format!(" tx {t} input {i}"),
                (Some(t), None) => format!(" tx {t}"),
                _ => String::new(),
            };
            println!("  RULE {}{at}: {}", v.rule, v.detail);
        }
        for bad in &r.bad_inputs {
            println!(
                "  BAD INPUT tx {} input {} (txid {}, {}): {}",
                bad.tx_index, bad.input_index, bad.txid, bad.script_type, bad.reason
            );
        }
        for n in r.not_checked() {
            let first = n.first_tx.map(|t| format!(", first tx {t}")).unwrap_or_default();
            println!("  NOT CHECKED {} ({} affected{first}): {}", n.rule, n.count, n.reason);
        }
        let verdict = match (r.is_valid(), r.not_checked().len()) {
            (false, _) => "INVALID".to_string(),
            (true, 0) => "VALID".to_string(),
            (true, n) => format!("VALID, with {n} rule{} not checked (listed above)", if n == 1 { "" } else { "s" }),
        };
        println!("{verdict}");
    }
    Ok(if r.is_valid() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub fn run_bench_verify(block: &Path, prevouts: &Path, threads: usize, runs: usize, json: bool) -> AnyResult<ExitCode> {
    let bytes = kiln_validate::read_file(block)?;
    let b = kiln_validate::decode_block(&bytes, &block.display().to_string())?;
    let inputs: usize = b.txdata.iter().skip(1).map(|t| t.input.len()).sum();
    let p = kiln_validate::read_spent_for(prevouts, inputs)?.txouts;
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
