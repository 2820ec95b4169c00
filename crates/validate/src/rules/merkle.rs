//! Bitcoin's transaction merkle tree with Core's mutation detection.

use bitcoin::hashes::{Hash, sha256d};

/// Computes the merkle root of `leaves` the way Core's `ComputeMerkleRoot`
/// does, and whether the tree is "mutated".
///
/// Bitcoin pairs an odd last node with itself. Because of that, a block whose
/// transaction list ends in a repeated run (e.g. `[1,2,3,4,5,6]` versus
/// `[1,2,3,4,5,6,5,6]`) can have the same root as the honest block
/// (CVE-2012-2459). Core flags any level where two nodes about to be hashed
/// together are identical (`hashes[2k] == hashes[2k+1]`), before the odd node
/// is duplicated; such a block is reported as `bad-txns-duplicate` rather than
/// as having a bad merkle root, so that the honest block with the same header
/// hash is not marked invalid.
///
/// An empty list gives the all-zero root, unmutated.
pub fn root(mut level: Vec<[u8; 32]>) -> ([u8; 32], bool) {
    let mut mutated = false;
    if level.is_empty() {
        return ([0; 32], false);
    }
    let mut buf = [0u8; 64];
    while level.len() > 1 {
        for pair in level.chunks_exact(2) {
            if pair[0] == pair[1] {
                mutated = true;
            }
        }
        if level.len() % 2 == 1
            && let Some(&last) = level.last()
        {
            level.push(last);
        }
        let next_len = level.len() / 2;
        for i in 0..next_len {
            buf[..32].copy_from_slice(&level[2 * i]);
            buf[32..].copy_from_slice(&level[2 * i + 1]);
            level[i] = sha256d::Hash::hash(&buf).to_byte_array();
        }
        level.truncate(next_len);
    }
    (level[0], mutated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn cve_2012_2459_shape_gives_same_root_and_is_flagged() {
        let honest: Vec<_> = (1..=6).map(h).collect();
        let mut forged = honest.clone();
        forged.extend([h(5), h(6)]);
        let (r1, m1) = root(honest);
        let (r2, m2) = root(forged);
        assert_eq!(r1, r2);
        assert!(!m1);
        assert!(m2);
    }

    #[test]
    fn odd_padding_alone_is_not_mutation() {
        let (_, m) = root((1..=5).map(h).collect());
        assert!(!m);
        let (r, m) = root(vec![h(9)]);
        assert_eq!(r, h(9));
        assert!(!m);
    }
}
