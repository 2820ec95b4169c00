//! One adapter's compute pipeline for the sha256d scan, and a blocking range
//! scan on top of it that never loses a result.

use std::sync::mpsc;
use std::time::Duration;

use bytemuck::{Pod, Zeroable};

use super::AdapterDesc;
use kiln_hash::ScanParams;

/// Errors from setting up or running the GPU kernel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    #[error("no GPU adapter {index} (found {count}; see `kiln devices`)")]
    NoSuchAdapter { index: usize, count: usize },
    #[error("could not open a device on {adapter}: {reason}")]
    Device { adapter: String, reason: String },
    #[error("GPU {adapter}: {reason}")]
    Run { adapter: String, reason: String },
}

/// Shape of the kernel; the defaults suit most GPUs, and the autotuner only
/// changes the dispatch size.
#[derive(Clone, Debug)]
pub struct KernelOptions {
    /// Invocations per workgroup (`WORKGROUP_SIZE` override constant).
    pub workgroup_size: u32,
    /// Nonces each invocation hashes (`NONCES_PER_INVOCATION`).
    pub nonces_per_invocation: u32,
    /// Result slots per dispatch; more candidates than this is an overflow.
    pub result_slots: u32,
    /// Create the shader module without runtime bounds checks. The kernel
    /// only indexes with constants, masked counters, or after an explicit
    /// `arrayLength` check, so this is sound.
    pub unchecked: bool,
}

impl Default for KernelOptions {
    fn default() -> Self {
        KernelOptions { workgroup_size: 64, nonces_per_invocation: 4, result_slots: 1024, unchecked: true }
    }
}

/// The uniform block of `shaders/sha256d.wgsl` (`struct Params`), 128 bytes.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct GpuParams {
    midstate: [u32; 8],
    state3: [u32; 8],
    tail: [u32; 3],
    target_hi: u32,
    kw16: u32,
    kw17: u32,
    w16: u32,
    w17: u32,
    nonce_base: u32,
    nonce_count: u32,
    pad: [u32; 2],
}

impl GpuParams {
    pub(crate) fn new(p: &ScanParams, nonce_base: u32, nonce_count: u32) -> Self {
        GpuParams {
            midstate: p.midstate,
            state3: p.state3,
            tail: p.tail,
            target_hi: p.target_hi,
            kw16: p.kw16,
            kw17: p.kw17,
            w16: p.w16,
            w17: p.w17,
            nonce_base,
            nonce_count,
            pad: [0; 2],
        }
    }
}

const SHADER: &str = include_str!("../../shaders/sha256d.wgsl");

/// Device, queue and pipeline for one adapter.
pub struct Kernel {
    pub desc: AdapterDesc,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    pub(crate) opts: KernelOptions,
    max_groups_per_dim: u32,
}

/// The buffers of one in-flight dispatch: its own params, results and
/// read-back copy, so several dispatches can be queued at once.
pub(crate) struct Slot {
    params: wgpu::Buffer,
    results: wgpu::Buffer,
    readback: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    mapped: Option<mpsc::Receiver<Result<(), wgpu::BufferAsyncError>>>,
}

/// What one dispatch found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchResult {
    /// Candidates the shader counted (may exceed the slot count).
    pub count: u32,
    /// The candidate nonces stored (at most the slot count).
    pub nonces: Vec<u32>,
}

impl DispatchResult {
    pub fn overflowed(&self) -> bool {
        self.count as usize > self.nonces.len()
    }
}

/// How an overflowed range is rescanned: as its two halves, to be scanned
/// first half first (push them onto a stack in the returned order). `None`
/// for a single nonce, which cannot overflow on a working device.
pub(crate) fn split_overflowed(start: u64, count: u64) -> Option<[(u64, u64); 2]> {
    let half = count / 2;
    (half > 0).then_some([(start + half, count - half), (start, half)])
}

pub(crate) const ONE_NONCE_OVERFLOW: &str = "one nonce reported more than one candidate";

impl Kernel {
    pub(crate) fn new(desc: AdapterDesc, adapter: &wgpu::Adapter, opts: &KernelOptions) -> Result<Self, GpuError> {
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("kiln sha256d device"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| GpuError::Device { adapter: desc.name.clone(), reason: e.to_string() })?;
        if opts.workgroup_size == 0
            || opts.workgroup_size > limits.max_compute_invocations_per_workgroup
            || opts.workgroup_size > limits.max_compute_workgroup_size_x
        {
            return Err(GpuError::Device {
                adapter: desc.name.clone(),
                reason: format!("workgroup size {} is not supported", opts.workgroup_size),
            });
        }
        let source = wgpu::ShaderModuleDescriptor {
            label: Some("sha256d.wgsl"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        };
        let module = if opts.unchecked {
            // SAFETY: every index in the shader is a constant, a loop counter
            // masked to the array length, or guarded by an explicit
            // `arrayLength` comparison (see the comment at the top of
            // shaders/sha256d.wgsl), so no access can go out of bounds.
            unsafe { device.create_shader_module_trusted(source, wgpu::ShaderRuntimeChecks::unchecked()) }
        } else {
            device.create_shader_module(source)
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("kiln scan bind group layout"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: wgpu::BufferSize::new(size_of::<GpuParams>() as u64),
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: false },
                        has_dynamic_offset: false,
                        min_binding_size: wgpu::BufferSize::new(8),
                    },
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("kiln scan pipeline layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let constants = [
            ("WORKGROUP_SIZE", opts.workgroup_size as f64),
            ("NONCES_PER_INVOCATION", opts.nonces_per_invocation.max(1) as f64),
        ];
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("kiln sha256d scan pipeline"),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("scan"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        Ok(Kernel {
            desc,
            device,
            queue,
            pipeline,
            layout,
            opts: KernelOptions { nonces_per_invocation: opts.nonces_per_invocation.max(1), ..opts.clone() },
            max_groups_per_dim: limits.max_compute_workgroups_per_dimension.max(1),
        })
    }

    /// Nonces one workgroup covers: dispatch sizes are multiples of this.
    pub fn granule(&self) -> u32 {
        self.opts.workgroup_size * self.opts.nonces_per_invocation
    }

    pub(crate) fn new_slot(&self, i: usize) -> Slot {
        let results_size = 4 + 4 * self.opts.result_slots.max(1) as u64;
        let params = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(&format!("kiln params {i}")),
            size: size_of::<GpuParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let results = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(&format!("kiln results {i}")),
            size: results_size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(&format!("kiln readback {i}")),
            size: results_size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&format!("kiln scan bind group {i}")),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: results.as_entire_binding() },
            ],
        });
        Slot { params, results, readback, bind_group, mapped: None }
    }

    /// Queues one dispatch over `count` nonces from `start` (count > 0).
    pub(crate) fn submit(&self, slot: &mut Slot, p: &ScanParams, start: u32, count: u32) {
        self.queue.write_buffer(&slot.params, 0, bytemuck::bytes_of(&GpuParams::new(p, start, count)));
        let mut enc =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("kiln scan encoder") });
        enc.clear_buffer(&slot.results, 0, Some(4));
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("kiln scan pass"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &slot.bind_group, &[]);
            let groups = count.div_ceil(self.granule());
            let x = groups.min(self.max_groups_per_dim);
            let y = groups.div_ceil(x);
            pass.dispatch_workgroups(x, y, 1);
        }
        enc.copy_buffer_to_buffer(&slot.results, 0, &slot.readback, 0, slot.results.size());
        let (tx, rx) = mpsc::channel();
        enc.map_buffer_on_submit(&slot.readback, wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.queue.submit([enc.finish()]);
        slot.mapped = Some(rx);
    }

    /// Waits for a slot's dispatch and reads its results.
    pub(crate) fn wait(&self, slot: &mut Slot) -> Result<DispatchResult, GpuError> {
        let err = |reason: String| GpuError::Run { adapter: self.desc.name.clone(), reason };
        let rx = slot.mapped.take().ok_or_else(|| err("waited on an idle slot".into()))?;
        loop {
            match rx.try_recv() {
                Ok(r) => {
                    r.map_err(|e| err(format!("mapping results: {e}")))?;
                    break;
                }
                Err(mpsc::TryRecvError::Empty) => {
                    self.device
                        .poll(wgpu::PollType::Wait { submission_index: None, timeout: Some(Duration::from_secs(60)) })
                        .map_err(|e| err(format!("waiting for the GPU: {e}")))?;
                }
                Err(mpsc::TryRecvError::Disconnected) => return Err(err("mapping callback dropped".into())),
            }
        }
        let result = {
            let view = slot.readback.get_mapped_range(..).map_err(|e| err(format!("{e:?}")))?;
            let words: &[u32] = bytemuck::cast_slice(&view);
            let count = words[0];
            let stored = (count as usize).min(words.len() - 1);
            DispatchResult { count, nonces: words[1..1 + stored].to_vec() }
        };
        slot.readback.unmap();
        Ok(result)
    }

    /// Scans `start..start+count` (wrapping is not allowed: `start + count <=
    /// 2^32`) in dispatches of at most `batch` nonces and returns every
    /// candidate, sorted. A dispatch whose slots overflow is split in halves
    /// and rescanned, so no candidate is ever dropped.
    ///
    /// # Errors
    /// A device failure while waiting or mapping.
    pub fn scan_blocking(&self, p: &ScanParams, start: u32, count: u64, batch: u32) -> Result<Vec<u32>, GpuError> {
        let batch = batch.max(self.granule()) as u64;
        let mut slot = self.new_slot(0);
        let mut pending: Vec<(u64, u64)> = Vec::new();
        let end = start as u64 + count;
        let mut s = start as u64;
        while s < end {
            let n = batch.min(end - s);
            pending.push((s, n));
            s += n;
        }
        pending.reverse();
        let mut out = Vec::new();
        while let Some((s, n)) = pending.pop() {
            self.submit(&mut slot, p, s as u32, n as u32);
            let r = self.wait(&mut slot)?;
            if r.overflowed() {
                let halves = split_overflowed(s, n).ok_or_else(|| GpuError::Run {
                    adapter: self.desc.name.clone(),
                    reason: ONE_NONCE_OVERFLOW.into(),
                })?;
                pending.extend(halves);
            } else {
                out.extend(r.nonces);
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}
