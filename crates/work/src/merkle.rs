//! Merkle roots: from a block's txids, and from a coinbase hash plus the
//! Stratum merkle branch (the path of siblings a pool sends in `mining.notify`).
//!
//! All hashes here are in internal byte order (as serialized in blocks).

use kiln_hash::sha256d;

fn hash_pair(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(a);
    buf[32..].copy_from_slice(b);
    sha256d(&buf)
}

/// The merkle root of a list of txids, duplicating the last hash of an odd
/// level as Bitcoin does. `None` for an empty list (a block has at least one tx).
pub fn merkle_root(txids: &[[u8; 32]]) -> Option<[u8; 32]> {
    if txids.is_empty() {
        return None;
    }
    let mut level: Vec<[u8; 32]> = txids.to_vec();
    while level.len() > 1 {
        level = level.chunks(2).map(|pair| hash_pair(&pair[0], pair.get(1).unwrap_or(&pair[0]))).collect();
    }
    Some(level[0])
}

/// The merkle branch (siblings from the leaf up) of the first transaction:
/// what a pool sends so a miner can rebuild the root around its own coinbase.
pub fn coinbase_branch(txids: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let mut branch = Vec::new();
    if txids.is_empty() {
        return branch;
    }
    let mut level: Vec<[u8; 32]> = txids.to_vec();
    while level.len() > 1 {
        branch.push(*level.get(1).unwrap_or(&level[0]));
        level = level.chunks(2).map(|pair| hash_pair(&pair[0], pair.get(1).unwrap_or(&pair[0]))).collect();
    }
    branch
}

/// The root obtained by hashing the coinbase hash up a merkle branch; the
/// coinbase is always the leftmost leaf.
pub fn root_from_branch(coinbase_hash: &[u8; 32], branch: &[[u8; 32]]) -> [u8; 32] {
    branch.iter().fold(*coinbase_hash, |acc, sib| hash_pair(&acc, sib))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_and_root_agree() {
        for n in 1..20u8 {
            let txids: Vec<[u8; 32]> = (0..n).map(|i| [i; 32]).collect();
            let root = merkle_root(&txids).unwrap();
            assert_eq!(root_from_branch(&txids[0], &coinbase_branch(&txids)), root, "n={n}");
        }
        assert_eq!(merkle_root(&[]), None);
    }
}
