//! A backend proves itself on real mainnet headers before it is trusted with a
//! benchmark or a pool: a fast wrong kernel must never report a rate.

use kiln_hash::{Backend, ScanParams};
use kiln_work::{Header, Work};

/// Real mainnet headers (public chain data): block 100000 and block 866342.
pub const REAL_HEADERS: [(&str, &str); 2] = [
    (
        "block 100000",
        "0100000050120119172a610421a6c3011dd330d9df07b63616c2cc1f1cd00200000000006657a9252aacd5c0b2940996ecff952228c3067cc38d4885efb5a4ac4247e9f337221b4d4c86041b0f2b5710",
    ),
    (
        "block 866342",
        "0060c02158fae6bd34a25f8f05ac2dbe0c47bbec3749c7de030c02000000000000000000bf3782471b2e4b5c52b77bdfd01040e508e309b4681cf6cb0c914eb70d678b9fba8e1367cd0e0317337f05c6",
    ),
];

/// Why a kernel failed its self-check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelfCheckError {
    #[error("{kernel} missed the real nonce {nonce:#010x} of {block}")]
    MissedNonce { kernel: String, block: &'static str, nonce: u32 },
    #[error("{kernel} reported {got} candidates where the portable kernel found {want} ({what})")]
    Mismatch { kernel: String, what: String, got: usize, want: usize },
    #[error("{kernel} failed while checking: {reason}")]
    Device { kernel: String, reason: String },
}

/// Decodes one of [`REAL_HEADERS`].
pub fn real_header(i: usize) -> [u8; 80] {
    let mut h = [0u8; 80];
    hex::decode_to_slice(REAL_HEADERS[i].1, &mut h).expect("valid constant");
    h
}

/// Checks `backend` on the real headers (it must find each block's nonce in a
/// range around it, at the block's own target) and against the portable kernel
/// at an easy target, over ranges whose lengths are not a multiple of any width.
///
/// # Errors
/// The first disagreement found.
pub fn self_check(backend: Backend) -> Result<(), SelfCheckError> {
    check_kernel(backend.name(), &mut |p, start, count| {
        let mut out = Vec::new();
        backend.scan(p, start, count as u32, &mut out);
        Ok(out)
    })
}

/// The same checks for a GPU kernel.
///
/// # Errors
/// The first disagreement, or a device failure.
pub fn self_check_gpu(k: &crate::gpu::Kernel) -> Result<(), SelfCheckError> {
    let name = format!("GPU {}", k.desc.name);
    check_kernel(&name, &mut |p, start, count| k.scan_blocking(p, start, count, 1 << 16).map_err(|e| e.to_string()))
}

/// A kernel under test: `scan(params, start, count)` returns its candidates in
/// ascending order, or a device failure as text.
type KernelScan<'a> = dyn FnMut(&ScanParams, u32, u64) -> Result<Vec<u32>, String> + 'a;

/// What every kernel must pass.
fn check_kernel(kernel: &str, scan: &mut KernelScan<'_>) -> Result<(), SelfCheckError> {
    let device = |reason| SelfCheckError::Device { kernel: kernel.to_string(), reason };
    for (i, (block, _)) in REAL_HEADERS.iter().enumerate() {
        let bytes = real_header(i);
        let header = Header::parse(&bytes).expect("80 bytes");
        let target = header.bits.to_target().expect("real nBits");
        let start = header.nonce.saturating_sub(5000);
        let work = Work::with_range(0, bytes, target, start, start as u64 + 10_007);
        let cands = scan(&work.params, start, work.len()).map_err(device)?;
        let found: Vec<u32> = cands.into_iter().filter(|&n| work.check(n).is_some()).collect();
        if found != [header.nonce] {
            return Err(SelfCheckError::MissedNonce { kernel: kernel.to_string(), block, nonce: header.nonce });
        }
        // Easy target: about one nonce in 256 is a candidate.
        let easy = ScanParams::new(&bytes, 0x00ff_ffff);
        let got = scan(&easy, 777, 20_011).map_err(device)?;
        let mut want = Vec::new();
        Backend::scalar().scan(&easy, 777, 20_011, &mut want);
        if got != want {
            return Err(SelfCheckError::Mismatch {
                kernel: kernel.to_string(),
                what: format!("easy target on {block}"),
                got: got.len(),
                want: want.len(),
            });
        }
    }
    Ok(())
}
