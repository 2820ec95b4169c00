//! Per-network consensus parameters: buried deployment heights, the block
//! subsidy schedule and the script verification flags Bitcoin Core applies to
//! a block at a given height.
//!
//! Heights are Bitcoin Core's `consensus.BIP34Height`, `BIP65Height`,
//! `BIP66Height`, `CSVHeight` and `SegwitHeight` from
//! `src/kernel/chainparams.cpp`. They are "buried": Core treats each rule as
//! active for every block at or above the height, regardless of how the
//! deployment was originally signalled.

use serde::{Deserialize, Serialize};

/// Script verification flag bits, with the same values as Bitcoin Core's
/// `SCRIPT_VERIFY_*` constants (and therefore as `bitcoinconsensus`), so the
/// result of [`script_flags`] can be passed straight to a script verifier.
pub mod flags {
    /// BIP16: evaluate P2SH redeem scripts.
    pub const P2SH: u32 = 1 << 0;
    /// BIP66: strict DER signatures.
    pub const DERSIG: u32 = 1 << 2;
    /// BIP147: the dummy CHECKMULTISIG element must be empty.
    pub const NULLDUMMY: u32 = 1 << 4;
    /// BIP65: OP_CHECKLOCKTIMEVERIFY.
    pub const CHECKLOCKTIMEVERIFY: u32 = 1 << 9;
    /// BIP112: OP_CHECKSEQUENCEVERIFY.
    pub const CHECKSEQUENCEVERIFY: u32 = 1 << 10;
    /// BIP141/143: segregated witness programs.
    pub const WITNESS: u32 = 1 << 11;
    /// BIP341/342: taproot and tapscript.
    pub const TAPROOT: u32 = 1 << 17;
}

/// The chains this crate knows parameters for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Network {
    /// Bitcoin mainnet.
    Mainnet,
    /// The (v3) public test network.
    Testnet3,
    /// The v4 public test network (BIP94).
    Testnet4,
    /// The default public signet.
    Signet,
    /// Local regression-test chains (Core's defaults, no `-testactivationheight`).
    Regtest,
}

/// Activation heights of the buried deployments and the halving interval.
///
/// A rule is active for a block at height `h` when `h >= height`, which is how
/// Core's `DeploymentActiveAt` treats buried deployments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployments {
    /// BIP34: the coinbase scriptSig must begin with the block height.
    pub bip34: u32,
    /// BIP65: OP_CHECKLOCKTIMEVERIFY.
    pub bip65: u32,
    /// BIP66: strict DER signatures.
    pub bip66: u32,
    /// BIP68/112/113: relative lock times, OP_CHECKSEQUENCEVERIFY and the
    /// median-time-past lock time cutoff (one deployment in Core: `CSVHeight`).
    pub csv: u32,
    /// BIP141/143/147: segregated witness (and NULLDUMMY with it).
    pub segwit: u32,
    /// Blocks between subsidy halvings.
    pub halving_interval: u32,
}

impl Network {
    /// Buried deployment heights as written in Core's chainparams.
    ///
    /// BIP16 (P2SH) and taproot are not listed: current Core applies both
    /// from genesis (see [`script_flags`]), exempting two historic mainnet
    /// blocks by hash rather than by height.
    pub const fn deployments(self) -> Deployments {
        match self {
            Network::Mainnet => Deployments {
                bip34: 227_931,
                bip65: 388_381,
                bip66: 363_725,
                csv: 419_328,
                segwit: 481_824,
                halving_interval: 210_000,
            },
            Network::Testnet3 => Deployments {
                bip34: 21_111,
                bip65: 581_885,
                bip66: 330_776,
                csv: 770_112,
                segwit: 834_624,
                halving_interval: 210_000,
            },
            // Testnet4 and signet bury everything at height 1 (their genesis
            // blocks predate nothing); regtest additionally has segwit from
            // genesis and a 150-block halving interval so tests can see it.
            Network::Testnet4 | Network::Signet => {
                Deployments { bip34: 1, bip65: 1, bip66: 1, csv: 1, segwit: 1, halving_interval: 210_000 }
            }
            Network::Regtest => Deployments { bip34: 1, bip65: 1, bip66: 1, csv: 1, segwit: 0, halving_interval: 150 },
        }
    }
}

impl std::str::FromStr for Network {
    type Err = String;
    /// The names `bitcoind -chain=` takes, and a few common spellings.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "main" | "mainnet" | "bitcoin" => Ok(Network::Mainnet),
            "test" | "testnet" | "testnet3" => Ok(Network::Testnet3),
            "testnet4" => Ok(Network::Testnet4),
            "signet" => Ok(Network::Signet),
            "regtest" => Ok(Network::Regtest),
            _ => Err(format!("unknown chain '{s}' (main, test, testnet4, signet, regtest)")),
        }
    }
}

impl From<bitcoin::Network> for Network {
    /// Maps rust-bitcoin's network enum (same five chains).
    fn from(n: bitcoin::Network) -> Self {
        match n {
            bitcoin::Network::Bitcoin => Network::Mainnet,
            bitcoin::Network::Testnet => Network::Testnet3,
            bitcoin::Network::Testnet4 => Network::Testnet4,
            bitcoin::Network::Signet => Network::Signet,
            bitcoin::Network::Regtest => Network::Regtest,
        }
    }
}

/// Script verification flags for a block at `height`, as Core's
/// `GetBlockScriptFlags` computes them.
///
/// Core starts every block from `P2SH | WITNESS | TAPROOT` — these rules are
/// enforced from genesis because the historical chain satisfies them, with
/// two mainnet exceptions that Core keys by block hash in
/// `consensus.script_flag_exceptions`:
/// block `00000000000002dc756eebf4f49723ed8d30cc28a5f108eb94b1ba88ac4f9c22`
/// (BIP16 exception, verified with no flags at all) and
/// `0000000000000000000f14c35b2d841e986ab5441de8c585d5ffe55ea1e395ad`
/// (taproot exception, verified with `P2SH | WITNESS` only). This function
/// takes no hash, so it cannot apply them; a caller re-validating those two
/// blocks must substitute the exception flags. (Historically P2SH was switched
/// on by timestamp on 2012-04-01 and taproot at mainnet height 709,632; Core no
/// longer uses either switch.)
///
/// On top of that base, DERSIG (BIP66), CHECKLOCKTIMEVERIFY (BIP65),
/// CHECKSEQUENCEVERIFY (CSV) and NULLDUMMY (segwit) follow the buried heights.
pub fn script_flags(network: Network, height: u32) -> u32 {
    let d = network.deployments();
    let mut f = flags::P2SH | flags::WITNESS | flags::TAPROOT;
    if height >= d.bip66 {
        f |= flags::DERSIG;
    }
    if height >= d.bip65 {
        f |= flags::CHECKLOCKTIMEVERIFY;
    }
    if height >= d.csv {
        f |= flags::CHECKSEQUENCEVERIFY;
    }
    if height >= d.segwit {
        f |= flags::NULLDUMMY;
    }
    f
}

/// Satoshis per bitcoin.
pub const COIN: u64 = 100_000_000;

/// Core's `MAX_MONEY`: no amount (output, input sum, fee) may exceed this.
pub const MAX_MONEY: u64 = 21_000_000 * COIN;

/// New coins a block at `height` may create (Core's `GetBlockSubsidy`):
/// 50 BTC halved once per `halving_interval` blocks, and zero once the shift
/// would reach 64 bits (Core guards that case explicitly because a 64-bit
/// right shift is undefined behaviour in C++).
pub fn block_subsidy(network: Network, height: u32) -> u64 {
    let interval = network.deployments().halving_interval;
    let halvings = height / interval.max(1);
    if halvings >= 64 {
        return 0;
    }
    (50 * COIN) >> halvings
}
