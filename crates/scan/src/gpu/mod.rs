//! The GPU scanner: the sha256d nonce scan as a wgpu compute shader
//! (`shaders/sha256d.wgsl`), one scanner per adapter.
//!
//! - [`kernel`]: device, pipeline, bind-group layout and buffers, built once;
//!   one dispatch = one nonce range; results come back through a bounded slot
//!   array with an atomic count, and an overflowing range is split and rescanned.
//! - [`scanner`]: a thread per adapter keeping two dispatches in flight, with
//!   autotuned dispatch size, and the same work/event contract as the CPU scanner.

pub mod kernel;
pub mod scanner;

use std::fmt;
use std::str::FromStr;

pub use kernel::{GpuError, Kernel, KernelOptions};
pub use scanner::{GpuScanner, GpuScannerOptions};

/// What `kiln devices` shows about one adapter.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterDesc {
    /// Position in kiln's adapter list, as used by `--gpu 0,2`.
    pub index: usize,
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    /// True for software rasterizers such as Mesa's lavapipe.
    pub software: bool,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    // Compute-capable native APIs only; GL compute adds nothing here.
    if std::env::var_os("WGPU_BACKEND").is_none() {
        desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    }
    wgpu::Instance::new(desc)
}

/// Every adapter wgpu finds, in a stable order (hardware first).
pub fn adapters() -> Vec<(AdapterDesc, wgpu::Adapter)> {
    let inst = instance();
    let mut found: Vec<wgpu::Adapter> = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
    found.sort_by_key(|a| {
        let i = a.get_info();
        (i.device_type == wgpu::DeviceType::Cpu, i.name.clone())
    });
    found
        .into_iter()
        .enumerate()
        .map(|(index, a)| {
            let i = a.get_info();
            let desc = AdapterDesc {
                index,
                name: i.name.clone(),
                backend: format!("{:?}", i.backend),
                device_type: format!("{:?}", i.device_type),
                driver: i.driver.clone(),
                driver_info: i.driver_info.clone(),
                software: i.device_type == wgpu::DeviceType::Cpu,
            };
            (desc, a)
        })
        .collect()
}

/// Which adapters to mine with (`--gpu`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum GpuSelection {
    /// Every hardware adapter; software ones (lavapipe) only when asked by index.
    #[default]
    Auto,
    /// No GPU.
    Off,
    /// These indices from [`adapters`].
    List(Vec<usize>),
}

impl FromStr for GpuSelection {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(GpuSelection::Auto),
            "off" | "none" => Ok(GpuSelection::Off),
            list => list
                .split(',')
                .map(|x| x.trim().parse::<usize>().map_err(|_| format!("'{x}' is not an adapter index")))
                .collect::<Result<Vec<_>, _>>()
                .map(GpuSelection::List),
        }
    }
}

impl fmt::Display for GpuSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuSelection::Auto => f.write_str("auto"),
            GpuSelection::Off => f.write_str("off"),
            GpuSelection::List(v) => {
                let s: Vec<String> = v.iter().map(|i| i.to_string()).collect();
                f.write_str(&s.join(","))
            }
        }
    }
}

/// Opens a kernel on every selected adapter.
///
/// # Errors
/// [`GpuError::NoSuchAdapter`] for an index that does not exist, or the first
/// device or pipeline creation failure.
pub fn open(selection: &GpuSelection, opts: &KernelOptions) -> Result<Vec<Kernel>, GpuError> {
    let all = adapters();
    let chosen: Vec<(AdapterDesc, wgpu::Adapter)> = match selection {
        GpuSelection::Off => Vec::new(),
        GpuSelection::Auto => all.into_iter().filter(|(d, _)| !d.software).collect(),
        GpuSelection::List(ix) => {
            let mut out = Vec::new();
            let mut all: Vec<Option<(AdapterDesc, wgpu::Adapter)>> = all.into_iter().map(Some).collect();
            for &i in ix {
                let n = all.len();
                let slot = all.get_mut(i).ok_or(GpuError::NoSuchAdapter { index: i, count: n })?;
                if let Some(a) = slot.take() {
                    out.push(a);
                }
            }
            out
        }
    };
    chosen.into_iter().map(|(d, a)| Kernel::new(d, &a, opts)).collect()
}

/// Opens the first adapter of any kind, software included: what tests and
/// `kiln bench --backend gpu` use on machines without a GPU.
pub fn open_any(opts: &KernelOptions) -> Result<Option<Kernel>, GpuError> {
    let all = adapters();
    match all.into_iter().next() {
        Some((d, a)) => Kernel::new(d, &a, opts).map(Some),
        None => Ok(None),
    }
}
