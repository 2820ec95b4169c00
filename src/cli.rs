//! The raw command line, as clap parses it. Nothing here has defaults that
//! could be confused with a value the user gave: options that a config file
//! may also set are `Option`s, so [`crate::options`] can let the command line
//! win whenever it was used.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use kiln_scan::gpu::GpuSelection;

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Bitcoin mining and validation engine: SIMD/SHA-NI CPU hashing, \
wgpu GPU mining, Stratum pool worker, batched signature verification"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

/// Log levels, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

/// A block and the outputs it spends, shared by the validation commands.
#[derive(clap::Args)]
pub struct BlockFiles {
    /// The block: raw bytes or hex text, optionally zstd-compressed.
    #[arg(long, value_name = "FILE")]
    pub block: PathBuf,
    /// The outputs spent by the block's non-coinbase inputs, in block order:
    /// a JSON array of {"txout": {"value", "script_pubkey"}} or the JSON of
    /// `bitcoin-cli getblock HASH 3`; optionally zstd-compressed.
    #[arg(long, value_name = "FILE")]
    pub prevouts: PathBuf,
}

/// Chain context for the validation commands.
#[derive(clap::Args)]
pub struct ChainArgs {
    /// Whose consensus rules apply: main, test, testnet4, signet or regtest.
    #[arg(long, value_name = "CHAIN", default_value = "main")]
    pub chain: kiln_validate::rules::Network,
    /// The block's height, for blocks that state none (version 1, before
    /// BIP34); when the coinbase states one, the two must agree.
    #[arg(long, value_name = "N")]
    pub height: Option<u32>,
    /// Consecutive 80-byte headers (raw, optionally zstd) up to at least the
    /// block's parent: gives the median time past that lock-time finality
    /// (BIP113) and BIP68 time locks need. Without it those rules are
    /// reported as not checked.
    #[arg(long, value_name = "FILE")]
    pub headers: Option<PathBuf>,
}

/// GPU selection, shared by the commands that hash.
#[derive(clap::Args, Clone, Default)]
pub struct GpuArgs {
    /// GPUs to use: auto (every hardware adapter; the default), off, or
    /// indices from `kiln devices` such as 0,2 (software adapters like
    /// lavapipe only by index).
    #[arg(long, value_name = "auto|off|LIST")]
    pub gpu: Option<GpuSelection>,
    /// Fixed GPU dispatch size of 2^N nonces (10..=32) instead of autotuning
    /// (which keeps about 20 ms of GPU work queued, the bound on a job switch).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(10..=32))]
    pub gpu_intensity: Option<u32>,
}

#[derive(clap::Args, Default)]
pub struct MineArgs {
    /// Pool URL: stratum+tcp://HOST:PORT or stratum+ssl://HOST:PORT (repeatable).
    #[arg(short = 'o', long = "url", value_name = "URL")]
    pub urls: Vec<String>,
    /// Worker name for the pool at the same position (repeatable).
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub users: Vec<String>,
    /// Password for the pool at the same position (repeatable; never logged).
    #[arg(short = 'p', long = "pass", value_name = "PASS")]
    pub passes: Vec<String>,
    /// CPU hashing threads (0 = no CPU mining). Default: every core.
    #[arg(short = 't', long, value_name = "N")]
    pub cpu_threads: Option<usize>,
    /// CPU backend (see `kiln devices`). Default: the fastest available.
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// TOML configuration file with the same keys; command-line options win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log level [default: info]. RUST_LOG, when set, filters instead
    /// (e.g. RUST_LOG=kiln=debug,wgpu_core=info).
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub log_level: Option<Level>,
    /// Serve a read-only web dashboard (http://ADDR:PORT/), JSON and
    /// Prometheus metrics: a port (bound on 127.0.0.1) or ADDR:PORT.
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub api: Option<String>,
    /// Serve cgminer's RPC API, read-only (summary, devs, pools, stats,
    /// version, config), for tools written for cgminer: a port (bound on
    /// 127.0.0.1; cgminer's usual one is 4028) or ADDR:PORT.
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub api_cgminer: Option<String>,
    /// Ask the pool for this starting difficulty (mining.suggest_difficulty).
    #[arg(long, value_name = "D")]
    pub suggest_difficulty: Option<f64>,
    /// Do not ask for version rolling (BIP310).
    #[arg(long)]
    pub no_version_rolling: bool,
    /// Seconds between status lines [default: 10].
    #[arg(long, value_name = "S")]
    pub status_interval: Option<u64>,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long, value_name = "S")]
    pub duration: Option<u64>,
    #[command(flatten)]
    pub solo: SoloArgs,
}

/// Solo mining against one's own Bitcoin Core (getblocktemplate/submitblock).
#[derive(clap::Args, Default)]
pub struct SoloArgs {
    /// Mine blocks for your own Bitcoin Core node instead of a pool (needs
    /// --coinbase-addr; the node's RPC at --rpc).
    #[arg(long)]
    pub solo: bool,
    /// The node's JSON-RPC URL [default: http://127.0.0.1:8332].
    #[arg(long, value_name = "URL")]
    pub rpc: Option<String>,
    /// Core's cookie file [default: DATADIR/<chain>/.cookie, the chain told
    /// by the --rpc port: 8332 main, 18332 testnet3, 48332 testnet4, 38332
    /// signet, 18443 regtest].
    #[arg(long, value_name = "FILE")]
    pub rpc_cookie: Option<PathBuf>,
    /// RPC user (-rpcuser or -rpcauth) instead of the cookie.
    #[arg(long, value_name = "USER")]
    pub rpc_user: Option<String>,
    /// RPC password (never logged).
    #[arg(long, value_name = "PASS")]
    pub rpc_pass: Option<String>,
    /// Core's data directory, for the default cookie path [default: ~/.bitcoin].
    #[arg(long, value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// Address the block reward goes to (base58, bech32 or bech32m); it must
    /// belong to the node's chain.
    #[arg(long, value_name = "ADDR")]
    pub coinbase_addr: Option<String>,
    /// Text written into each coinbase [default: /kiln/] (at most 40 bytes).
    #[arg(long, value_name = "TEXT")]
    pub coinbase_tag: Option<String>,
    /// Have the node check each new template's block (BIP23 proposal)
    /// before any hashing is spent on it.
    #[arg(long)]
    pub rpc_proposal: bool,
}

/// `kiln node`: header sync from Bitcoin peers.
#[derive(clap::Args)]
pub struct NodeArgs {
    /// Which network: main, test (testnet3), testnet4, signet or regtest.
    #[arg(long, value_name = "CHAIN", value_parser = parse_chain)]
    pub chain: bitcoin::Network,
    /// A peer to connect to, IP:PORT or HOST:PORT (repeatable). There is no
    /// peer discovery yet: kiln connects to these and --addnode peers only.
    /// Lost peers are dialled again with back-off.
    #[arg(long = "connect", value_name = "ADDR", value_parser = parse_connect)]
    pub connect: Vec<std::net::SocketAddr>,
    /// One more peer to connect to (repeatable; the same as --connect while
    /// kiln discovers no peers itself).
    #[arg(long = "addnode", value_name = "ADDR", value_parser = parse_connect)]
    pub addnode: Vec<std::net::SocketAddr>,
    /// Where blocks (blkNNNNN.dat), their index and the validated headers
    /// are kept [default: ~/.kiln/CHAIN]. A restart resumes from here.
    #[arg(long, value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// Accept inbound peers and serve them headers and blocks: PORT (bound
    /// on 127.0.0.1) or ADDR:PORT; with no value, 127.0.0.1 and the chain's
    /// usual port (8333, 18333, 48333, 38333, 18444).
    #[arg(long, value_name = "[ADDR:]PORT", num_args = 0..=1, default_missing_value = "")]
    pub listen: Option<String>,
    /// Connections at most, outbound and inbound together (inbound peers get
    /// what the configured outbound ones leave).
    #[arg(long, value_name = "N", default_value_t = 125)]
    pub maxconnections: usize,
    /// Sync headers only: no block store, nothing served (the --datadir is
    /// not touched).
    #[arg(long)]
    pub headers_only: bool,
    /// Serve read-only JSON (/peers, /chain) and Prometheus metrics
    /// (/metrics) over HTTP: a port (bound on 127.0.0.1) or ADDR:PORT.
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub api: Option<String>,
    /// Log level [default: info]. RUST_LOG, when set, filters instead.
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub log_level: Option<Level>,
    /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
    #[arg(long, value_name = "S")]
    pub duration: Option<u64>,
    /// Seconds between status lines.
    #[arg(long, value_name = "S", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub status_interval: u64,
}

/// Core's chain names (and rust-bitcoin's spellings of them).
fn parse_chain(s: &str) -> Result<bitcoin::Network, String> {
    match s {
        "main" | "mainnet" | "bitcoin" => Ok(bitcoin::Network::Bitcoin),
        "test" | "testnet" | "testnet3" => Ok(bitcoin::Network::Testnet),
        "testnet4" => Ok(bitcoin::Network::Testnet4),
        "signet" => Ok(bitcoin::Network::Signet),
        "regtest" => Ok(bitcoin::Network::Regtest),
        _ => Err(format!("unknown chain '{s}' (main, test, testnet4, signet or regtest)")),
    }
}

/// IP:PORT, or HOST:PORT resolved now (the first address).
fn parse_connect(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    s.to_socket_addrs()
        .map_err(|e| format!("'{s}' is not IP:PORT or HOST:PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("'{s}' resolves to no address"))
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Measure sha256d hash rates of every available backend (no pool, no GPU needed).
    ///
    /// Each backend first proves itself on real mainnet headers, then hashes
    /// block 866342's header for a few seconds per thread count. The reference
    /// column is OpenSSL's single-stream SHA-256 rate in 64-byte blocks,
    /// measured in the same run (the sha2 crate when openssl is missing).
    Bench {
        /// Only this backend (see `kiln devices`).
        #[arg(long, value_name = "NAME")]
        backend: Option<String>,
        /// Thread count. Default: 1 and every core.
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Seconds of measurement per row.
        #[arg(long, value_name = "S", default_value_t = 3.0)]
        seconds: f64,
        /// Print a JSON array (one object per row) instead of a table.
        #[arg(long)]
        json: bool,
        /// Skip the OpenSSL reference measurement.
        #[arg(long)]
        no_reference: bool,
        #[command(flatten)]
        gpu: GpuArgs,
    },
    /// List the hashing backends and GPU adapters this machine has.
    Devices,
    /// Mine on one or more Stratum V1 pools (priority order, with failover).
    ///
    /// Example: kiln mine -o stratum+tcp://pool.example:3333 -u wallet.worker -p x
    ///
    /// Repeat -o/-u/-p for backup pools; a pool without its own -u/-p uses the
    /// previous one's. Every option can also come from a TOML file (--config)
    /// with the same names, pools as [[pool]] tables with url, user, pass; an
    /// option given on the command line always wins over the file.
    ///
    /// Every kernel (CPU backend and GPU) proves itself on real mainnet
    /// headers before mining starts.
    ///
    /// A status line every few seconds shows each scanner's rate, the 1-minute
    /// average, accepted/rejected/stale shares, hardware errors, pool and
    /// difficulty.
    Mine(Box<MineArgs>),
    /// Be a peer of the Bitcoin network: sync, check, store, serve and
    /// relay blocks.
    ///
    /// Example: kiln node --chain regtest --connect 127.0.0.1:18444 --listen
    ///
    /// Connects to every --connect/--addnode peer, syncs and fully validates
    /// the header chain (proof of work, retargeting, time and version rules;
    /// headers of less work than our chain or the network's minimum chain
    /// work are measured before anything is stored, as Core's headers
    /// presync does), then downloads the best chain's blocks from several
    /// peers at once, checks every rule that needs no UTXO set (merkle root
    /// with the CVE-2012-2459 guard, witness commitment, size and weight,
    /// coinbase, transactions, lock times against median time past) and
    /// stores them crash-safely in --datadir. With --listen, peers may
    /// connect (Core with -connect=<kiln> syncs from kiln); every new block
    /// is announced to each peer as it asked (compact block, headers or
    /// inv). Compact blocks (BIP152) are received and sent. Connections use
    /// BIP324 v2 encryption (Core's default), falling back to v1 for a peer
    /// that does not speak it.
    ///
    /// A status line every --status-interval seconds: peers (outbound and
    /// inbound), headers, blocks, the tip, rates and an ETA.
    ///
    /// Stops after --duration or on SIGINT/SIGTERM; killing it at any moment
    /// loses no stored block. Exit status: 0 ok, 2 usage errors (a bad
    /// address or chain, no peer and no --listen, an unusable --datadir).
    Node(NodeArgs),
    /// Validate a block: proof of work, merkle root, witness commitment, BIP34,
    /// the consensus rules that protect money (sizes, weight, coinbase,
    /// amounts, fees and subsidy, duplicate and missing inputs, coinbase
    /// maturity, sigops, lock times), and every input's scripts against the
    /// outputs it spends.
    ///
    /// Each broken rule is named by Bitcoin Core's reject reason (e.g.
    /// bad-txns-in-belowout). Rules that need context the files do not give
    /// (median time past: --headers; coinbase flags and heights of the spent
    /// outputs) are listed as not checked, never passed silently.
    ///
    /// Exit status: 0 valid, 1 invalid, 2 unreadable or inconsistent input.
    VerifyBlock {
        #[command(flatten)]
        files: BlockFiles,
        #[command(flatten)]
        chain: ChainArgs,
        /// Verification threads (0 = every core; at most 1024).
        #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1024))]
        threads: u16,
        /// Verify Schnorr signatures one by one instead of with BIP340 batch
        /// verification (same verdicts; for comparison).
        #[arg(long)]
        no_schnorr_batch: bool,
        /// Verify every input even when the block already fails its proof of
        /// work, merkle root or weight (by default those end the work early,
        /// as in Core; this gives a full diagnosis of a damaged block).
        #[arg(long)]
        all_scripts: bool,
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Time bare libsecp256k1 verification of a block's signatures (one
    /// thread) against kiln's whole validation pipeline (all threads).
    BenchVerify {
        #[command(flatten)]
        files: BlockFiles,
        /// Pipeline threads (0 = every core; at most 1024).
        #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1024))]
        threads: u16,
        /// Repetitions; medians are reported (1..=1000).
        #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
        runs: u16,
        #[arg(long)]
        json: bool,
    },
}
