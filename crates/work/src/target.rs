//! Proof-of-work targets in their three spellings: the header's compact nBits,
//! the full 256-bit target, and difficulty (pool difficulty 1 = 0xFFFF·2^208).

use std::cmp::Ordering;
use std::fmt;

use super::header::BlockHash;

/// Why an nBits value or a difficulty does not give a usable target.
#[derive(Debug, thiserror::Error, PartialEq, Clone, Copy)]
#[non_exhaustive]
pub enum TargetError {
    #[error("nBits {bits:#010x} has its sign bit set (a negative target)")]
    Negative { bits: u32 },
    #[error("nBits {bits:#010x} encodes a target above 2^256")]
    Overflow { bits: u32 },
    #[error("nBits {bits:#010x} encodes a zero target, which no hash can meet")]
    Zero { bits: u32 },
    #[error("difficulty must be a positive finite number, got {value}")]
    BadDifficulty { value: f64 },
}

/// nBits as stored in the header: a base-256 floating point number with an
/// 8-bit exponent, a 23-bit mantissa and a sign bit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CompactTarget(pub u32);

impl CompactTarget {
    /// Expands nBits to the 256-bit target the way Bitcoin Core's `SetCompact`
    /// does, rejecting what `CheckProofOfWork` rejects.
    ///
    /// # Errors
    /// [`TargetError::Negative`], [`TargetError::Overflow`] or [`TargetError::Zero`].
    pub fn to_target(self) -> Result<Target, TargetError> {
        let bits = self.0;
        let exponent = bits >> 24;
        let mantissa = bits & 0x007f_ffff;
        if mantissa != 0 && bits & 0x0080_0000 != 0 {
            return Err(TargetError::Negative { bits });
        }
        if mantissa != 0
            && (exponent > 34 || (mantissa > 0xff && exponent > 33) || (mantissa > 0xffff && exponent > 32))
        {
            return Err(TargetError::Overflow { bits });
        }
        let mut le = [0u8; 32];
        if exponent <= 3 {
            let m = mantissa >> (8 * (3 - exponent));
            le[..4].copy_from_slice(&m.to_le_bytes());
        } else {
            let shift = (exponent - 3) as usize;
            for (i, byte) in mantissa.to_le_bytes()[..3].iter().enumerate() {
                if shift + i < 32 {
                    le[shift + i] = *byte;
                }
            }
        }
        let t = Target::from_le_bytes(le);
        if t.is_zero() {
            return Err(TargetError::Zero { bits });
        }
        Ok(t)
    }
}

impl fmt::Display for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// A 256-bit target, compared as a number. A hash meets it when the hash, read
/// as a little-endian 256-bit number, is less than or equal to it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// Little-endian limbs: `limbs[3]` is the most significant.
    limbs: [u64; 4],
}

impl Target {
    /// The largest target, met by every hash.
    pub const MAX: Target = Target { limbs: [u64::MAX; 4] };

    /// The target of pool difficulty 1: 0xFFFF · 2^208.
    pub const DIFF1: Target = Target { limbs: [0, 0, 0, 0x0000_0000_ffff_0000] };

    pub fn from_le_bytes(b: [u8; 32]) -> Self {
        Target { limbs: core::array::from_fn(|i| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap())) }
    }

    pub fn to_le_bytes(self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, l) in self.limbs.iter().enumerate() {
            b[8 * i..8 * i + 8].copy_from_slice(&l.to_le_bytes());
        }
        b
    }

    pub fn is_zero(&self) -> bool {
        self.limbs == [0; 4]
    }

    /// The most significant 32 bits: what the scan kernels compare first.
    pub fn top_u32(&self) -> u32 {
        (self.limbs[3] >> 32) as u32
    }

    /// True when `hash` as a 256-bit little-endian number is `<=` this target.
    pub fn is_met_by(&self, hash: &BlockHash) -> bool {
        cmp_limbs(&hash.to_le_limbs(), &self.limbs) != Ordering::Greater
    }

    /// The target for a pool or network difficulty: DIFF1 / difficulty,
    /// rounded down, saturating at [`Target::MAX`] for difficulties below
    /// about 2^-32. Computed in `f64`, as miners and pools do.
    ///
    /// # Errors
    /// [`TargetError::BadDifficulty`] for zero, negative, NaN or infinite values.
    pub fn from_difficulty(d: Difficulty) -> Result<Self, TargetError> {
        let v = d.0;
        if !(v.is_finite() && v > 0.0) {
            return Err(TargetError::BadDifficulty { value: v });
        }
        let t = (0xffff as f64) * 2f64.powi(208) / v;
        Ok(Target::from_f64(t))
    }

    /// Difficulty of this target: DIFF1 / target.
    pub fn difficulty(&self) -> Difficulty {
        Difficulty(Target::DIFF1.to_f64() / self.to_f64())
    }

    fn to_f64(self) -> f64 {
        self.limbs.iter().rev().fold(0.0, |acc, &l| acc * 2f64.powi(64) + l as f64)
    }

    /// Truncating conversion of a non-negative `f64` to a 256-bit integer.
    fn from_f64(x: f64) -> Self {
        if x >= 2f64.powi(256) {
            return Target::MAX;
        }
        if x < 1.0 {
            return Target { limbs: [0; 4] };
        }
        let bits = x.to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i32 - 1075;
        let mant = (bits & ((1 << 52) - 1)) | (1 << 52);
        let mut limbs = [0u64; 4];
        if exp <= 0 {
            limbs[0] = mant >> (-exp);
        } else {
            let (word, bit) = ((exp / 64) as usize, (exp % 64) as u32);
            limbs[word] |= mant << bit;
            if bit != 0 && word + 1 < 4 {
                limbs[word + 1] |= mant >> (64 - bit);
            }
        }
        Target { limbs }
    }
}

fn cmp_limbs(a: &[u64; 4], b: &[u64; 4]) -> Ordering {
    for i in (0..4).rev() {
        match a[i].cmp(&b[i]) {
            Ordering::Equal => continue,
            o => return o,
        }
    }
    Ordering::Equal
}

impl PartialOrd for Target {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Target {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_limbs(&self.limbs, &other.limbs)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in self.limbs.iter().rev() {
            write!(f, "{l:016x}")?;
        }
        Ok(())
    }
}
impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self})")
    }
}

/// A difficulty as pools and `getdifficulty` state it.
#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
pub struct Difficulty(pub f64);

impl Difficulty {
    /// The share difficulty a hash achieves, DIFF1 / hash: what pools credit
    /// and what miners report as their best share. Infinite for the all-zero
    /// hash (no target is smaller).
    pub fn of_hash(hash: &BlockHash) -> Difficulty {
        Target::from_le_bytes(hash.0).difficulty()
    }
}

impl fmt::Display for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_bits() {
        let t = CompactTarget(0x1d00ffff).to_target().unwrap();
        assert_eq!(t, Target::DIFF1);
        assert!((t.difficulty().0 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn invalid_bits() {
        assert_eq!(CompactTarget(0x04923456).to_target(), Err(TargetError::Negative { bits: 0x04923456 }));
        assert_eq!(CompactTarget(0xff123456).to_target(), Err(TargetError::Overflow { bits: 0xff123456 }));
        assert_eq!(CompactTarget(0x00000000).to_target(), Err(TargetError::Zero { bits: 0 }));
        assert_eq!(CompactTarget(0x01003456).to_target(), Err(TargetError::Zero { bits: 0x01003456 }));
        // Core's arith_uint256 test values.
        assert_eq!(CompactTarget(0x01123456).to_target().unwrap().to_le_bytes()[0], 0x12);
        assert_eq!(
            CompactTarget(0x20123456).to_target().unwrap().to_string(),
            "1234560000000000000000000000000000000000000000000000000000000000"
        );
        assert!(CompactTarget(0x22000001).to_target().is_ok());
        assert!(CompactTarget(0x23000001).to_target().is_err());
    }

    #[test]
    fn difficulty_round_trip() {
        for d in [1.0, 2.0, 1024.0, 65536.0, 1e12, 0.5, 0.001] {
            let t = Target::from_difficulty(Difficulty(d)).unwrap();
            let back = t.difficulty().0;
            assert!((back - d).abs() / d < 1e-9, "{d} -> {back}");
        }
        assert!(Target::from_difficulty(Difficulty(0.0)).is_err());
        assert!(Target::from_difficulty(Difficulty(f64::NAN)).is_err());
        assert_eq!(Target::from_difficulty(Difficulty(1e-80)).unwrap(), Target::MAX);
    }

    #[test]
    fn difficulty_of_a_hash() {
        // A hash equal to DIFF1 is exactly difficulty 1; half of it, 2.
        let diff1 = BlockHash(Target::DIFF1.to_le_bytes());
        assert_eq!(Difficulty::of_hash(&diff1).0, 1.0);
        let half = BlockHash(Target::from_difficulty(Difficulty(2.0)).unwrap().to_le_bytes());
        assert!((Difficulty::of_hash(&half).0 - 2.0).abs() < 1e-12);
        // Block 100000's hash beats its own network target (difficulty 14484.16).
        let mut b = [0u8; 32];
        hex_to(&mut b, "000000000003ba27aa200b1cecaad478d2b00432346c3f1f3986da1afd33e506");
        let d = Difficulty::of_hash(&BlockHash(b)).0;
        assert!(d > 14484.16 && d < 20000.0, "{d}");
        assert_eq!(Difficulty::of_hash(&BlockHash([0; 32])).0, f64::INFINITY);
    }

    /// Displayed (reversed) hex into internal byte order.
    fn hex_to(out: &mut [u8; 32], display: &str) {
        for (i, o) in out.iter_mut().rev().enumerate() {
            *o = u8::from_str_radix(&display[2 * i..2 * i + 2], 16).unwrap();
        }
    }
}
