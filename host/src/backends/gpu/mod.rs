//! The GPU backend on wgpu.
//!
//! ```text
//!  engine ──run_node──▶ GpuBackend ──▶ dense.wgsl        matmul, MLP layers
//!         │                        └─▶ elementwise.wgsl  add/mul/relu/tanh/sigmoid,
//!         │                                              sum/mean/max reductions
//!         └─start_sampling──▶ GpuSampling ─▶ gibbs.wgsl  chromatic block Gibbs,
//!                                                        Philox4x32-10 draws
//!  every kernel: buffers from one BufferPool, GPU time from timestamp
//!  queries where the adapter has them (wall time otherwise)
//! ```
//!
//! The sampler ("GPU-sim") runs pairwise discrete programs (spins and
//! categorical variables with unary and pairwise potentials) on many chains
//! at once; its counter-based Philox RNG makes draws depend only on the seed.
//!
//! Any adapter works: a discrete GPU, or Mesa's software Vulkan driver
//! (lavapipe) on machines without one. No adapter is
//! [`GpuError::Unavailable`], which the engine treats as a fallback.

mod backend;
mod dense;
mod elementwise;
mod gibbs;
mod pool;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use serde::Serialize;

pub use backend::GpuBackend;
pub use elementwise::{Binary, Reduce, Unary};
pub use gibbs::{GpuProgram, GpuSampling};
use pool::{BufferPool, Pooled};

/// Largest state count of one variable the kernel handles.
pub const MAX_STATES: usize = 64;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum GpuError {
    /// No usable adapter or device (fatal for the GPU; others serve).
    #[error("no GPU available: {0}")]
    Unavailable(String),
    /// The work uses something the GPU kernels do not run.
    #[error("the GPU cannot run this: {0}")]
    Unsupported(String),
    /// The device failed while running.
    #[error("GPU error: {0}")]
    Device(String),
}

/// Which adapter ran the work, for provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdapterInfo {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    /// How GPU busy time is measured: `timestamps` (the adapter's query
    /// timestamps) or `wall` (host time around each submit).
    pub timing: String,
}

/// An acquired device with every pipeline built.
pub struct GpuDevice {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pub info: AdapterInfo,
    /// Nanoseconds per timestamp tick, when timestamps are on.
    timestamp_period: Option<f64>,
    gibbs: gibbs::GibbsPipelines,
    dense: dense::DensePipeline,
    elementwise: elementwise::ElementwisePipelines,
    pool: BufferPool,
    /// The last error raised outside an error scope, not yet reported.
    uncaptured: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// What one submission cost on the device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuTime {
    /// Host wall time from encoding to the results being readable.
    pub wall_seconds: f64,
    /// Time the GPU was busy (timestamps), or the wall time without them.
    pub busy_seconds: f64,
}

impl GpuDevice {
    /// Acquires any adapter (`THERMOROUTE_GPU=off` pretends there is none).
    pub fn acquire() -> Result<GpuDevice, GpuError> {
        GpuDevice::acquire_matching("auto")
    }

    /// Acquires the adapter `selector` names: `auto` (the high-performance
    /// one wgpu prefers), `none` (no GPU: always [`GpuError::Unavailable`]),
    /// or part of an adapter's name, case-insensitive (e.g. `llvmpipe`,
    /// `H100`).
    pub fn acquire_matching(selector: &str) -> Result<GpuDevice, GpuError> {
        if std::env::var("THERMOROUTE_GPU").is_ok_and(|v| v == "off") {
            return Err(GpuError::Unavailable(
                "disabled by THERMOROUTE_GPU=off".into(),
            ));
        }
        if selector == "none" {
            return Err(GpuError::Unavailable(
                "the hardware file sets gpu.adapter = \"none\"".into(),
            ));
        }
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = if selector == "auto" {
            pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                ..Default::default()
            }))
            .map_err(|e| {
                GpuError::Unavailable(format!(
                    "{e} (install a GPU driver, or Mesa's Vulkan driver: apt-get install mesa-vulkan-drivers)"
                ))
            })?
        } else {
            let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
            let wanted = selector.to_lowercase();
            let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
            adapters
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&wanted))
                .ok_or_else(|| {
                    GpuError::Unavailable(format!(
                        "no adapter's name contains {selector:?}; found: {}",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ))
                })?
        };
        let raw = adapter.get_info();
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("thermoroute"),
            required_features: if timestamps {
                wgpu::Features::TIMESTAMP_QUERY
            } else {
                wgpu::Features::empty()
            },
            // Seven storage buffers per stage and large draws buffers: ask
            // for what the adapter has.
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::Unavailable(format!("{}: {e}", raw.name)))?;
        // wgpu's default handler panics on errors outside a scope (a failed
        // allocation, say): keep the last one and report it as a typed error
        // from the next submission instead.
        let uncaptured: Arc<Mutex<Option<String>>> = Arc::default();
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e| {
            if let Ok(mut slot) = sink.lock() {
                *slot = Some(e.to_string());
            }
        }));
        let period = f64::from(queue.get_timestamp_period());
        let timestamp_period = (timestamps && period > 0.0).then_some(period);
        let info = AdapterInfo {
            name: raw.name.clone(),
            backend: format!("{:?}", raw.backend).to_lowercase(),
            device_type: format!("{:?}", raw.device_type),
            driver: format!("{} {}", raw.driver, raw.driver_info)
                .trim()
                .to_string(),
            timing: if timestamp_period.is_some() {
                "timestamps".into()
            } else {
                "wall".into()
            },
        };
        tracing::info!(
            adapter = %info.name,
            backend = %info.backend,
            device_type = %info.device_type,
            driver = %info.driver,
            timing = %info.timing,
            selector,
            "GPU adapter selected"
        );
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let gibbs = gibbs::GibbsPipelines::new(&device);
        let dense = dense::DensePipeline::new(&device);
        let elementwise = elementwise::ElementwisePipelines::new(&device);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Unavailable(format!("{}: {e}", info.name)));
        }
        Ok(GpuDevice {
            device,
            queue,
            info,
            timestamp_period,
            gibbs,
            dense,
            elementwise,
            pool: BufferPool::default(),
            uncaptured,
        })
    }

    /// The process's device for the default adapter, acquired on first
    /// use. Every engine, run and test shares it: acquiring an adapter costs
    /// tens of milliseconds and a device per caller would multiply GPU
    /// memory.
    pub fn shared() -> Result<Arc<GpuDevice>, GpuError> {
        GpuDevice::shared_matching("auto")
    }

    /// The process's device for `selector` (see
    /// [`GpuDevice::acquire_matching`]), acquired on first use.
    pub fn shared_matching(selector: &str) -> Result<Arc<GpuDevice>, GpuError> {
        type Devices = Mutex<HashMap<String, Result<Arc<GpuDevice>, GpuError>>>;
        static SHARED: OnceLock<Devices> = OnceLock::new();
        let mut devices = SHARED
            .get_or_init(Devices::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        devices
            .entry(selector.to_string())
            .or_insert_with(|| {
                let acquired = GpuDevice::acquire_matching(selector).map(Arc::new);
                if let Err(e) = &acquired {
                    tracing::info!(selector, "no GPU: {e}; other backends serve");
                }
                acquired
            })
            .clone()
    }

    /// Bytes the buffer pool holds for reuse, and how many requests it
    /// served from the pool versus new allocations.
    pub fn pool_stats(&self) -> pool::PoolStats {
        self.pool.stats()
    }

    /// A pooled storage buffer holding `data` (padded: wgpu rejects empty
    /// bindings).
    fn upload<T: bytemuck::Pod>(
        &self,
        label: &str,
        data: &[T],
        extra: wgpu::BufferUsages,
    ) -> Pooled {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let buffer = self.pool.take(
            &self.device,
            label,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | extra,
            bytes.len().max(4) as u64,
        );
        if !bytes.is_empty() {
            self.queue.write_buffer(&buffer, 0, bytes);
        }
        buffer
    }

    /// A pooled, uninitialised storage buffer the kernels write.
    fn output(&self, label: &str, bytes: u64) -> Pooled {
        self.pool.take(
            &self.device,
            label,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            bytes.max(4),
        )
    }

    /// A pooled uniform buffer holding `data`.
    fn uniform<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> Pooled {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let buffer = self.pool.take(
            &self.device,
            label,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            bytes.len().max(16) as u64,
        );
        self.queue.write_buffer(&buffer, 0, bytes);
        buffer
    }

    /// Timestamp queries for one compute pass, when the adapter has them.
    fn stamp(&self) -> Option<Stamp> {
        self.timestamp_period?;
        let query_set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("pass time"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let resolve = self.pool.take(
            &self.device,
            "timestamps",
            wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            16,
        );
        let read = self.pool.take(
            &self.device,
            "timestamps readback",
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            16,
        );
        Some(Stamp {
            query_set,
            resolve,
            read,
        })
    }

    /// Submits `encoder` (whose one compute pass wrote `stamp`), copies
    /// `bytes` of `output` from `offset` back, waits, and returns them with
    /// the time the work took. Errors inside are typed, never panics.
    fn finish(
        &self,
        mut encoder: wgpu::CommandEncoder,
        stamp: Option<Stamp>,
        output: Option<(&wgpu::Buffer, u64, u64)>,
        started: Instant,
    ) -> Result<(Vec<u8>, GpuTime), GpuError> {
        let staging = output.map(|(buffer, offset, bytes)| {
            let staging = self.pool.take(
                &self.device,
                "readback",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                bytes.max(4),
            );
            if bytes > 0 {
                encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, bytes);
            }
            (staging, bytes)
        });
        if let Some(s) = &stamp {
            encoder.resolve_query_set(&s.query_set, 0..2, &s.resolve, 0);
            encoder.copy_buffer_to_buffer(&s.resolve, 0, &s.read, 0, 16);
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        self.queue.submit([encoder.finish()]);
        if let Some(e) = pollster::block_on(oom.pop()) {
            drop(pollster::block_on(scope.pop()));
            return Err(GpuError::Device(e.to_string()));
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Device(e.to_string()));
        }
        if let Some(e) = self.uncaptured.lock().ok().and_then(|mut slot| slot.take()) {
            return Err(GpuError::Device(e));
        }
        let bytes = match staging {
            Some((staging, bytes)) => read_back(&self.device, staging, bytes)?,
            None => {
                self.device
                    .poll(wgpu::PollType::wait_indefinitely())
                    .map_err(|e| GpuError::Device(e.to_string()))?;
                Vec::new()
            }
        };
        let wall_seconds = started.elapsed().as_secs_f64();
        let busy_seconds = match (stamp, self.timestamp_period) {
            (Some(s), Some(period)) => {
                let ticks = read_back(&self.device, s.read, 16)?;
                let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&ticks);
                let seconds = ticks[1].wrapping_sub(ticks[0]) as f64 * period * 1e-9;
                // A wrapped or unsupported counter reads as nonsense: the
                // wall time is then the honest bound.
                if seconds > 0.0 && seconds <= wall_seconds {
                    seconds
                } else {
                    wall_seconds
                }
            }
            _ => wall_seconds,
        };
        Ok((
            bytes,
            GpuTime {
                wall_seconds,
                busy_seconds,
            },
        ))
    }
}

/// Timestamp queries written at the start and end of one compute pass.
struct Stamp {
    query_set: wgpu::QuerySet,
    resolve: Pooled,
    read: Pooled,
}

impl Stamp {
    fn writes(&self) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.query_set,
            beginning_of_pass_write_index: Some(0),
            end_of_pass_write_index: Some(1),
        }
    }
}

/// Maps a `MAP_READ` buffer, copies its first `bytes` out and unmaps it.
/// A buffer whose mapping failed is not returned to the pool.
fn read_back(device: &wgpu::Device, staging: Pooled, bytes: u64) -> Result<Vec<u8>, GpuError> {
    if bytes == 0 {
        return Ok(Vec::new());
    }
    let (tx, rx) = std::sync::mpsc::channel();
    staging
        .slice(..bytes)
        .map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| GpuError::Device(e.to_string()))?;
    match rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            staging.discard();
            return Err(GpuError::Device(format!("reading results back: {e}")));
        }
        Err(_) => {
            staging.discard();
            return Err(GpuError::Device("the readback never completed".into()));
        }
    }
    let out = {
        let view = staging
            .slice(..bytes)
            .get_mapped_range()
            .map_err(|e| GpuError::Device(e.to_string()))?;
        view.to_vec()
    };
    staging.unmap();
    Ok(out)
}

/// How a kernel reads one binding.
#[derive(Clone, Copy)]
enum Binding {
    /// Parameters, at a fixed offset or a dynamic one per dispatch.
    Uniform {
        dynamic: bool,
    },
    Read,
    Write,
}

/// Compiles `source` and builds one bind group layout (bindings numbered
/// from 0 in `bindings` order) and a compute pipeline per entry point.
fn pipelines<const N: usize>(
    device: &wgpu::Device,
    label: &str,
    source: &str,
    bindings: &[Binding],
    entry_points: [&str; N],
) -> (wgpu::BindGroupLayout, [wgpu::ComputePipeline; N]) {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let (ty, has_dynamic_offset) = match *b {
                Binding::Uniform { dynamic } => (wgpu::BufferBindingType::Uniform, dynamic),
                Binding::Read => (wgpu::BufferBindingType::Storage { read_only: true }, false),
                Binding::Write => (wgpu::BufferBindingType::Storage { read_only: false }, false),
            };
            wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty,
                    has_dynamic_offset,
                    min_binding_size: None,
                },
                count: None,
            }
        })
        .collect();
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries: &entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(label),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let built = entry_points.map(|entry_point| {
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry_point),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(entry_point),
            compilation_options: Default::default(),
            cache: None,
        })
    });
    (layout, built)
}

/// A bind group over whole buffers, numbered in order.
fn bind_all(
    device: &wgpu::Device,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: b.as_entire_binding(),
        })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

/// A 2-D dispatch covering `groups` workgroups (one dimension holds at most
/// 65 535); kernels rebuild the flat index from `num_workgroups`.
fn grid(groups: u32) -> (u32, u32) {
    const MAX: u32 = 65_535;
    if groups <= MAX {
        (groups.max(1), 1)
    } else {
        (MAX, groups.div_ceil(MAX))
    }
}
