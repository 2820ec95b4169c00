//! Wiring for `kiln mine`: scanners, engine, job source and (optionally) the
//! monitoring endpoint, each on its own thread, joined by channels. Every
//! kernel proves itself on real headers here, before any of it starts, so no
//! caller can mine with a wrong kernel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use kiln_hash::Backend;
use kiln_scan::Scanner;
use kiln_scan::cpu::CpuScanner;
use kiln_scan::gpu::{self, GpuScanner, GpuScannerOptions, GpuSelection, KernelOptions};
use kiln_scan::selfcheck::{SelfCheckError, self_check, self_check_gpu};

use crate::engine::Engine;
use crate::source::solo::{SoloConfig, SoloError, SoloSource};
use crate::source::stratum::{Client, ClientOptions, PoolConfig};
use crate::stats::Stats;

/// Where jobs come from and where solutions go.
#[derive(Clone, Debug)]
pub enum JobSource {
    /// Stratum V1 pools in priority order (the first is the primary).
    Stratum { pools: Vec<PoolConfig>, client: ClientOptions },
    /// Bitcoin Core's getblocktemplate/submitblock: blocks for one's own node.
    Solo(SoloConfig),
}

/// Everything `kiln mine` was asked to do, validated.
#[derive(Clone, Debug)]
pub struct MinerConfig {
    pub source: JobSource,
    /// 0 = no CPU mining.
    pub cpu_threads: usize,
    pub backend: Backend,
    pub gpu: GpuSelection,
    pub gpu_options: GpuScannerOptions,
    /// Serve the monitoring endpoint and dashboard here (read-only).
    pub api: Option<std::net::SocketAddr>,
    /// The share floor per scanner (see [`crate::engine::MAX_SHARES_PER_SECOND`],
    /// the default). On regtest, where nearly every hash is a block, it is
    /// also the most blocks a scanner finds per second.
    pub max_solutions_per_second: Option<f64>,
    /// Serve cgminer's RPC API here (read-only).
    pub cgminer_api: Option<std::net::SocketAddr>,
}

/// A running miner.
pub struct Miner {
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    threads: Vec<JoinHandle<()>>,
    /// The address the API actually bound (port 0 resolved).
    pub api_addr: Option<std::net::SocketAddr>,
    /// Why the job source gave up, when it did (e.g. the node refused the
    /// credentials mid-run).
    fatal: Option<Arc<std::sync::Mutex<Option<String>>>>,
    /// The address the cgminer API actually bound.
    pub cgminer_addr: Option<std::net::SocketAddr>,
}

/// Why a miner could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MinerError {
    #[error("no pool given (use -o URL -u USER -p PASS)")]
    NoPool,
    #[error("nothing to mine with: CPU threads are 0 and no GPU was selected or found")]
    NoScanner,
    #[error(transparent)]
    Gpu(#[from] gpu::GpuError),
    #[error("{0}; refusing to mine with a wrong kernel")]
    SelfCheck(#[from] SelfCheckError),
    #[error(transparent)]
    Solo(#[from] SoloError),
    #[error("{what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
}

impl Miner {
    /// Starts every thread.
    ///
    /// # Errors
    /// See [`MinerError`].
    pub fn start(cfg: MinerConfig) -> Result<Self, MinerError> {
        if let JobSource::Stratum { pools, .. } = &cfg.source
            && pools.is_empty()
        {
            return Err(MinerError::NoPool);
        }
        if let JobSource::Solo(solo) = &cfg.source {
            // Credentials and the payout address's network are checked
            // before any thread starts, so a typo is exit 2 at once. A node
            // that is not up yet is waited for.
            match crate::source::solo::probe(solo, std::time::Duration::from_secs(10)) {
                Ok(_) => {}
                Err(SoloError::Rpc { endpoint, source }) if source.is_transient() => {
                    log::warn!("{endpoint}: {source}; mining starts when the node answers");
                }
                Err(e) => return Err(e.into()),
            }
        }
        let stats = Arc::new(Stats::new());
        let stop = Arc::new(AtomicBool::new(false));
        let (source_tx, source_rx) = crossbeam_channel::unbounded();
        // Bounded: a source that stops taking solutions costs counted losses,
        // not memory.
        let (solution_tx, solution_rx) = crossbeam_channel::bounded(crate::engine::SOLUTION_QUEUE);
        let (scan_tx, scan_rx) = crossbeam_channel::unbounded();

        // Every kernel proves itself before any thread starts.
        if cfg.cpu_threads > 0 {
            self_check(cfg.backend)?;
        }
        let kernels = gpu::open(&cfg.gpu, &KernelOptions::default())?;
        for k in &kernels {
            self_check_gpu(k)?;
        }

        let mut scanners: Vec<Box<dyn Scanner>> = Vec::new();
        if cfg.cpu_threads > 0 {
            scanners.push(Box::new(CpuScanner::start(cfg.backend, cfg.cpu_threads, scan_tx.clone())));
        }
        for k in kernels {
            log::info!("GPU {}: {} ({}, {})", k.desc.index, k.desc.name, k.desc.backend, k.desc.driver);
            scanners.push(Box::new(GpuScanner::start(k, cfg.gpu_options.clone(), scan_tx.clone())));
        }
        drop(scan_tx);
        if scanners.is_empty() {
            return Err(MinerError::NoScanner);
        }
        for s in &scanners {
            log::info!("scanner {}", s.label());
        }

        let poll_err = |source| MinerError::Io { what: "creating the network poll", source };
        let (net, waker, fatal): (Box<dyn FnOnce() + Send>, _, _) = match cfg.source {
            JobSource::Stratum { pools, client: opts } => {
                let client = Client::new(pools, opts, source_tx, solution_rx, Arc::clone(&stats), Arc::clone(&stop))
                    .map_err(poll_err)?;
                let waker = client.waker();
                (Box::new(move || client.run()), waker, None)
            }
            JobSource::Solo(solo) => {
                let source = SoloSource::new(solo, source_tx, solution_rx, Arc::clone(&stats), Arc::clone(&stop))
                    .map_err(poll_err)?;
                let (waker, fatal) = (source.waker(), source.fatal_slot());
                (Box::new(move || source.run()), waker, Some(fatal))
            }
        };
        let mut engine = Engine::new(
            scanners,
            Arc::clone(&stats),
            solution_tx,
            Box::new(move || {
                let _ = waker.wake();
            }),
        );
        if let Some(cap) = cfg.max_solutions_per_second {
            engine.set_share_rate_cap(Some(cap));
        }
        let mut threads = vec![
            std::thread::Builder::new().name("kiln-engine".into()).spawn(move || engine.run(source_rx, scan_rx)),
            std::thread::Builder::new().name("kiln-net".into()).spawn(net),
        ]
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| MinerError::Io { what: "starting threads", source })?;

        type Serve = fn(
            std::net::SocketAddr,
            Arc<Stats>,
            Arc<AtomicBool>,
        ) -> std::io::Result<(JoinHandle<()>, std::net::SocketAddr)>;
        // Each read-only server on its own thread; a bind error stops the
        // threads already started, so none outlives the error.
        let mut start_server = |addr: Option<std::net::SocketAddr>, serve: Serve, what: &'static str| {
            let Some(addr) = addr else { return Ok(None) };
            match serve(addr, Arc::clone(&stats), Arc::clone(&stop)) {
                Ok((handle, bound)) => {
                    threads.push(handle);
                    Ok(Some(bound))
                }
                Err(source) => {
                    stop.store(true, Ordering::Release);
                    Err(MinerError::Io { what, source })
                }
            }
        };
        let api_addr = start_server(cfg.api, crate::api::serve, "binding the API address")?;
        let cgminer_addr = start_server(cfg.cgminer_api, crate::cgminer::serve, "binding the cgminer API address")?;
        if let Some(bound) = api_addr {
            log::info!("monitoring API (read-only) and dashboard on http://{bound}/");
        }
        if let Some(bound) = cgminer_addr {
            log::info!("cgminer API (read-only) on {bound}");
        }
        Ok(Miner { stop, stats, threads, api_addr, cgminer_addr, fatal })
    }

    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Why the job source stopped by itself, if it did.
    pub fn failure(&self) -> Option<String> {
        self.fatal.as_ref().and_then(|f| f.lock().ok().and_then(|g| g.clone()))
    }

    pub fn is_running(&self) -> bool {
        !self.stop.load(Ordering::Acquire) && self.threads.iter().all(|t| !t.is_finished())
    }

    /// Stops every thread and waits for them.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.shutdown();
    }
}
