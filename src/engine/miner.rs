//! Wiring for `kiln mine`: scanners, engine, pool client and (optionally) the
//! monitoring endpoint, each on its own thread, joined by channels.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::{Engine, Stats};
use crate::net::client::{Client, ClientOptions, PoolConfig};
use crate::scan::Scanner;
use crate::scan::cpu::CpuScanner;
use crate::scan::gpu::{self, GpuScanner, GpuScannerOptions, GpuSelection, KernelOptions};
use crate::sha256::Backend;

/// Everything `kiln mine` was asked to do, validated.
#[derive(Clone, Debug)]
pub struct MinerConfig {
    pub pools: Vec<PoolConfig>,
    /// 0 = no CPU mining.
    pub cpu_threads: usize,
    pub backend: Backend,
    pub gpu: GpuSelection,
    pub gpu_options: GpuScannerOptions,
    pub client: ClientOptions,
    /// Serve the monitoring endpoint here (read-only).
    pub api: Option<std::net::SocketAddr>,
}

/// A running miner.
pub struct Miner {
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    threads: Vec<JoinHandle<()>>,
    /// The address the API actually bound (port 0 resolved).
    pub api_addr: Option<std::net::SocketAddr>,
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
    #[error("{what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
}

impl Miner {
    /// Starts every thread.
    ///
    /// # Errors
    /// See [`MinerError`].
    pub fn start(cfg: MinerConfig) -> Result<Self, MinerError> {
        if cfg.pools.is_empty() {
            return Err(MinerError::NoPool);
        }
        let stats = Arc::new(Stats::new());
        let stop = Arc::new(AtomicBool::new(false));
        let (net_tx, net_rx) = crossbeam_channel::unbounded();
        let (share_tx, share_rx) = crossbeam_channel::unbounded();
        let (scan_tx, scan_rx) = crossbeam_channel::unbounded();

        let mut scanners: Vec<Box<dyn Scanner>> = Vec::new();
        if cfg.cpu_threads > 0 {
            scanners.push(Box::new(CpuScanner::start(cfg.backend, cfg.cpu_threads, scan_tx.clone())));
        }
        for k in gpu::open(&cfg.gpu, &KernelOptions::default())? {
            crate::log_info!("GPU {}: {} ({}, {})", k.desc.index, k.desc.name, k.desc.backend, k.desc.driver);
            scanners.push(Box::new(GpuScanner::start(k, cfg.gpu_options.clone(), scan_tx.clone())));
        }
        drop(scan_tx);
        if scanners.is_empty() {
            return Err(MinerError::NoScanner);
        }
        for s in &scanners {
            crate::log_info!("scanner {}", s.label());
        }

        let client =
            Client::new(cfg.pools.clone(), cfg.client.clone(), net_tx, share_rx, Arc::clone(&stats), Arc::clone(&stop))
                .map_err(|source| MinerError::Io { what: "creating the network poll", source })?;
        let waker = client.waker();
        let engine = Engine::new(
            scanners,
            Arc::clone(&stats),
            share_tx,
            Box::new(move || {
                let _ = waker.wake();
            }),
        );
        let mut threads = vec![
            std::thread::Builder::new().name("kiln-engine".into()).spawn(move || engine.run(net_rx, scan_rx)),
            std::thread::Builder::new().name("kiln-net".into()).spawn(move || client.run()),
        ]
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| MinerError::Io { what: "starting threads", source })?;

        let mut api_addr = None;
        if let Some(addr) = cfg.api {
            let (handle, bound) = crate::net::api::serve(addr, Arc::clone(&stats), Arc::clone(&stop))
                .map_err(|source| MinerError::Io { what: "binding the API address", source })?;
            crate::log_info!("monitoring API (read-only) on http://{bound}/");
            api_addr = Some(bound);
            threads.push(handle);
        }
        Ok(Miner { stop, stats, threads, api_addr })
    }

    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
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
