//! Which scan kernel runs: detected once at run time, forceable by name.
//!
//! One binary carries every backend; [`Backend::detect`] picks the fastest the
//! CPU supports, and [`Backend::from_kind`] lets tests, benches and `--backend`
//! force any of them (it refuses one the CPU lacks).

use std::fmt;

use super::ScanParams;

/// The scan kernels kiln knows, fastest-first order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// x86 SHA extensions, several interleaved streams.
    ShaNi,
    /// AVX-512F/BW, 16 lanes.
    Avx512,
    /// AVX2, 8 lanes.
    Avx2,
    /// Portable Rust, one nonce at a time.
    Scalar,
}

impl BackendKind {
    /// Every kind, in kiln's order of preference.
    pub const ALL: [BackendKind; 4] = [BackendKind::Avx512, BackendKind::ShaNi, BackendKind::Avx2, BackendKind::Scalar];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::ShaNi => "sha-ni",
            BackendKind::Avx512 => "avx512",
            BackendKind::Avx2 => "avx2",
            BackendKind::Scalar => "scalar",
        }
    }

    /// Parses a name as printed by [`BackendKind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        BackendKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Nonces one kernel call handles at once (the lane or stream count).
    pub fn width(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            BackendKind::ShaNi => super::shani::STREAMS,
            #[cfg(not(target_arch = "x86_64"))]
            BackendKind::ShaNi => 1,
            BackendKind::Avx512 => 16,
            BackendKind::Avx2 => 8,
            BackendKind::Scalar => 1,
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scan kernel that this CPU is known to support. The only way to get one
/// is through detection, which is what makes [`Backend::scan`] safe to call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backend(BackendKind);

impl Backend {
    /// The portable kernel, available everywhere.
    pub fn scalar() -> Self {
        Backend(BackendKind::Scalar)
    }

    /// The given kernel if this CPU supports it.
    pub fn from_kind(kind: BackendKind) -> Option<Self> {
        supported(kind).then_some(Backend(kind))
    }

    /// Every kernel this CPU supports, in order of preference.
    pub fn available() -> Vec<Backend> {
        BackendKind::ALL.into_iter().filter_map(Backend::from_kind).collect()
    }

    /// The preferred kernel on this CPU.
    pub fn detect() -> Self {
        Backend::available().into_iter().next().unwrap_or_else(Backend::scalar)
    }

    pub fn kind(self) -> BackendKind {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// Hashes nonces `start..start+count` (wrapping is the caller's concern:
    /// `start + count` should not exceed 2^32) and appends every nonce whose
    /// hash's top 32 bits are `<= params.target_hi` to `out`.
    ///
    /// These are candidates: the caller compares the full hash with the full
    /// target before trusting one.
    pub fn scan(self, params: &ScanParams, start: u32, count: u32, out: &mut Vec<u32>) {
        match self.0 {
            BackendKind::Scalar => super::scalar::scan(params, start, count, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `Backend` of this kind exists only if `supported` found
            // AVX2 on this CPU.
            BackendKind::Avx2 => unsafe { super::avx2::scan(params, start, count, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `Backend` of this kind exists only if `supported` found
            // AVX-512F and AVX-512BW on this CPU.
            BackendKind::Avx512 => unsafe { super::avx512::scan(params, start, count, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `Backend` of this kind exists only if `supported` found
            // SHA, SSSE3 and SSE4.1 on this CPU.
            BackendKind::ShaNi => unsafe { super::shani::scan(params, start, count, out) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("non-x86 builds never construct x86 backends"),
        }
    }
}

fn supported(kind: BackendKind) -> bool {
    match kind {
        BackendKind::Scalar => true,
        #[cfg(target_arch = "x86_64")]
        BackendKind::Avx2 => std::is_x86_feature_detected!("avx2"),
        #[cfg(target_arch = "x86_64")]
        BackendKind::Avx512 => std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw"),
        #[cfg(target_arch = "x86_64")]
        BackendKind::ShaNi => {
            std::is_x86_feature_detected!("sha")
                && std::is_x86_feature_detected!("ssse3")
                && std::is_x86_feature_detected!("sse4.1")
        }
        #[cfg(not(target_arch = "x86_64"))]
        _ => false,
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
