//! `kiln bench-verify`: what kiln's whole pipeline costs next to bare
//! libsecp256k1 verification of the same signatures, measured in one run.

use std::time::Instant;

use bitcoin::TxOut;
use serde::Serialize;

use super::batch::{self, SchnorrItem};
use super::extract::{SigCheck, extract_all, split_prevouts};
use super::verify::validate_with;
use super::{InputError, decode_block};
use crate::secp;

/// The figures `kiln bench-verify` prints.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyBench {
    pub inputs: usize,
    pub ecdsa: usize,
    pub schnorr: usize,
    /// Inputs checked by the script interpreter (not part of the bare figure).
    pub interpreter: usize,
    /// Median single-thread time to verify every pre-parsed signature once.
    pub bare_single_thread_ms: f64,
    pub bare_us_per_sig: f64,
    /// Median single-thread time of the block's Schnorr signatures alone, one
    /// by one (libsecp256k1) and as one BIP340 batch (kiln's verifier).
    pub schnorr_one_by_one_ms: f64,
    pub schnorr_batch_ms: f64,
    /// schnorr_one_by_one_ms / schnorr_batch_ms: above 1, batching pays.
    /// `None` when the block has no Schnorr signatures.
    pub schnorr_batch_speedup: Option<f64>,
    /// Median wall time of decode + block checks + extraction + verification.
    pub pipeline_ms: f64,
    /// The same pipeline with Schnorr signatures verified one by one.
    pub pipeline_one_by_one_ms: f64,
    pub threads: usize,
    /// bare_single_thread_ms / (threads × pipeline_ms): 1.0 means the
    /// pipeline adds nothing to the signatures' own cost.
    pub ratio: f64,
    pub runs: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Measures `runs` times each and reports medians.
///
/// # Errors
/// Bad block bytes or prevouts that do not match the block.
pub fn bench_verify(
    block_bytes: &[u8],
    prevouts: &[TxOut],
    threads: usize,
    runs: usize,
) -> Result<VerifyBench, InputError> {
    let block = decode_block(block_bytes, "block")?;
    let inputs: usize = block.txdata.iter().skip(1).map(|t| t.input.len()).sum();
    if inputs != prevouts.len() {
        return Err(InputError::PrevoutCount { prevouts: prevouts.len(), inputs });
    }
    let per_tx = split_prevouts(&block, prevouts);
    let checks = extract_all(&block, &per_tx);
    // Pre-parsed signatures: one verification each (the signing key of a
    // multisig signature is found once, outside the timed loop).
    let ctx = secp();
    let mut ecdsa = Vec::new();
    let mut schnorr = Vec::new();
    let mut interpreter = 0;
    for c in &checks {
        match &c.check {
            SigCheck::Ecdsa { sig, pk, msg } => ecdsa.push((*sig, *pk, *msg)),
            SigCheck::Schnorr { sig, pk, msg } => schnorr.push((*sig, *pk, *msg)),
            SigCheck::Multisig { sigs, keys } => {
                for (sig, msg) in sigs {
                    if let Some(pk) = keys.iter().flatten().find(|pk| ctx.verify_ecdsa(msg, sig, pk).is_ok()) {
                        ecdsa.push((*sig, *pk, *msg));
                    }
                }
            }
            SigCheck::Interpreter { .. } => interpreter += 1,
            SigCheck::Fail(_) | SigCheck::NoSignature => {}
        }
    }
    let runs = runs.max(1);
    let mut bare = Vec::with_capacity(runs);
    let mut pipeline = Vec::with_capacity(runs);
    let mut pipeline_one = Vec::with_capacity(runs);
    let mut schnorr_one = Vec::with_capacity(runs);
    let mut schnorr_batch = Vec::with_capacity(runs);
    let items: Vec<SchnorrItem> =
        schnorr.iter().map(|(sig, pk, msg)| SchnorrItem { sig, pk, msg: msg.as_ref() }).collect();
    for run in 0..runs {
        let t = Instant::now();
        let mut ok = 0usize;
        for (sig, pk, msg) in &ecdsa {
            ok += ctx.verify_ecdsa(msg, sig, pk).is_ok() as usize;
        }
        let t_schnorr = Instant::now();
        for (sig, pk, msg) in &schnorr {
            ok += ctx.verify_schnorr(sig, msg, pk).is_ok() as usize;
        }
        bare.push(t.elapsed().as_secs_f64() * 1e3);
        schnorr_one.push(t_schnorr.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(ok);

        let t = Instant::now();
        std::hint::black_box(batch::verify_all(&items));
        schnorr_batch.push(t.elapsed().as_secs_f64() * 1e3);

        // Alternate which pipeline goes first, so neither always inherits
        // the caches and clocks the other leaves behind.
        let mut order = [(true, &mut pipeline), (false, &mut pipeline_one)];
        if run % 2 == 1 {
            order.reverse();
        }
        for (batched, times) in order {
            let t = Instant::now();
            let b = decode_block(block_bytes, "block")?;
            let r = validate_with(&b, prevouts, threads, batched)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(r.is_valid());
        }
    }
    let bare_ms = median(bare);
    let pipeline_ms = median(pipeline);
    let (schnorr_one_by_one_ms, schnorr_batch_ms) = (median(schnorr_one), median(schnorr_batch));
    let threads = if threads == 0 { rayon::current_num_threads() } else { threads };
    let sigs = ecdsa.len() + schnorr.len();
    Ok(VerifyBench {
        inputs,
        ecdsa: ecdsa.len(),
        schnorr: schnorr.len(),
        interpreter,
        bare_single_thread_ms: bare_ms,
        bare_us_per_sig: bare_ms * 1e3 / sigs.max(1) as f64,
        schnorr_one_by_one_ms,
        schnorr_batch_ms,
        schnorr_batch_speedup: (!schnorr.is_empty()).then(|| schnorr_one_by_one_ms / schnorr_batch_ms),
        pipeline_ms,
        pipeline_one_by_one_ms: median(pipeline_one),
        threads,
        ratio: bare_ms / (threads as f64 * pipeline_ms),
        runs,
    })
}
