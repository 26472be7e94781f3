//! The GPU backend on wgpu: a chromatic block-Gibbs sampler ("GPU-sim") for
//! pairwise discrete programs (spins and categorical variables with unary
//! and pairwise potentials), many chains at once, with a counter-based
//! Philox RNG so draws depend only on the seed.
//!
//! Any adapter works: a discrete GPU, or Mesa's software Vulkan driver
//! (lavapipe) on machines without one. No adapter is
//! [`GpuError::Unavailable`], which the engine treats as a fallback.

mod dense;

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use wgpu::util::DeviceExt;

use crate::model::EProgram;
use crate::model::eprogram::VarKind;
use crate::sampler::Draws;

/// Largest state count of one variable the kernel handles.
pub const MAX_STATES: usize = 64;

/// Entries of the per-dispatch parameter buffer (each 256 bytes apart).
const PARAM_STRIDE: u64 = 256;
const PARAMS_PER_SUBMIT: usize = 1024;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum GpuError {
    /// No usable adapter or device (fatal for the GPU; others serve).
    #[error("no GPU available: {0}")]
    Unavailable(String),
    /// The program uses something the GPU kernel does not run.
    #[error("the GPU sampler cannot run this program: {0}")]
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
}

/// An acquired device with the Gibbs pipelines built.
pub struct GpuDevice {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pub info: AdapterInfo,
    layout: wgpu::BindGroupLayout,
    sweep: wgpu::ComputePipeline,
    record: wgpu::ComputePipeline,
    dense: dense::DensePipeline,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// A program laid out for the kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuProgram {
    pub n_vars: usize,
    pub states: Vec<usize>,
    pub is_spin: Vec<bool>,
    /// Per variable: states, unary offset, adjacency start, adjacency end.
    var_info: Vec<[u32; 4]>,
    adj: Vec<[u32; 2]>,
    tables: Vec<f32>,
    /// Free variables grouped by colour, and each colour's (start, len).
    order: Vec<u32>,
    colours: Vec<(u32, u32)>,
    clamp: Vec<Option<u32>>,
}

fn spin_value(state: usize) -> f64 {
    if state == 1 { 1.0 } else { -1.0 }
}

impl GpuProgram {
    /// Builds unary and pairwise log-potential tables (inverse temperature
    /// folded in) and a greedy colouring, or says why the kernel cannot run
    /// the program.
    pub fn compile(program: &EProgram) -> Result<GpuProgram, GpuError> {
        if !program.constraints.is_empty() {
            return Err(GpuError::Unsupported(format!(
                "{} hard constraint(s): the GPU kernel updates single variables only",
                program.constraints.len()
            )));
        }
        let n = program.n_vars();
        let states: Vec<usize> = (0..n).map(|v| program.var_kind(v).states()).collect();
        if let Some(v) = states.iter().position(|&k| k > MAX_STATES) {
            return Err(GpuError::Unsupported(format!(
                "variable {v} has {} states (at most {MAX_STATES})",
                states[v]
            )));
        }
        let beta = program.beta;
        let mut unary: Vec<Vec<f64>> = states.iter().map(|&k| vec![0.0; k]).collect();
        // (i, j) with i < j -> table [s_i][s_j].
        let mut pairs: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
        if let Some(ising) = &program.ising {
            for (i, b) in ising.biases.iter().enumerate() {
                for s in 0..2 {
                    unary[i][s] += beta * b * spin_value(s);
                }
            }
            for (&[a, b], w) in ising.edges.iter().zip(&ising.weights) {
                let (i, j) = (a.min(b), a.max(b));
                let t = pairs.entry((i, j)).or_insert_with(|| vec![0.0; 4]);
                for si in 0..2 {
                    for sj in 0..2 {
                        t[si * 2 + sj] += beta * w * spin_value(si) * spin_value(sj);
                    }
                }
            }
        }
        let n_spins = program.n_spins();
        for (c, var) in program.categorical.iter().enumerate() {
            if let Some(lp) = &var.log_potential {
                for (s, x) in lp.iter().enumerate() {
                    unary[n_spins + c][s] += beta * x;
                }
            }
        }
        for (f_index, f) in program.factors.iter().enumerate() {
            match f.vars[..] {
                [v] => {
                    for s in 0..states[v] {
                        unary[v][s] += beta * f.log_potential[s];
                    }
                }
                [a, b] => {
                    let (i, j) = (a.min(b), a.max(b));
                    let (ki, kj) = (states[i], states[j]);
                    let t = pairs.entry((i, j)).or_insert_with(|| vec![0.0; ki * kj]);
                    for sa in 0..states[a] {
                        for sb in 0..states[b] {
                            let x = beta * f.log_potential[sa * states[b] + sb];
                            let (si, sj) = if a < b { (sa, sb) } else { (sb, sa) };
                            t[si * kj + sj] += x;
                        }
                    }
                }
                _ => {
                    return Err(GpuError::Unsupported(format!(
                        "factor {f_index} couples {} variables (the kernel runs unary and pairwise potentials)",
                        f.vars.len()
                    )));
                }
            }
        }
        // Both orientations of every pair table, and the adjacency lists.
        let mut tables: Vec<f32> = Vec::new();
        let mut unary_off = vec![0u32; n];
        for v in 0..n {
            unary_off[v] = tables.len() as u32;
            tables.extend(unary[v].iter().map(|&x| x as f32));
        }
        let mut neighbours: Vec<Vec<[u32; 2]>> = vec![Vec::new(); n];
        for (&(i, j), t) in &pairs {
            let (ki, kj) = (states[i], states[j]);
            neighbours[i].push([j as u32, tables.len() as u32]);
            tables.extend(t.iter().map(|&x| x as f32));
            neighbours[j].push([i as u32, tables.len() as u32]);
            for sj in 0..kj {
                for si in 0..ki {
                    tables.push(t[si * kj + sj] as f32);
                }
            }
        }
        let mut adj = Vec::new();
        let mut var_info = Vec::with_capacity(n);
        for v in 0..n {
            let start = adj.len() as u32;
            adj.extend(neighbours[v].iter().copied());
            var_info.push([states[v] as u32, unary_off[v], start, adj.len() as u32]);
        }
        let clamp: Vec<Option<u32>> = program
            .clamped_states()
            .into_iter()
            .map(|c| c.map(u32::from))
            .collect();
        // Greedy colouring of the free variables.
        let mut colour = vec![usize::MAX; n];
        let mut n_colours = 0;
        for v in (0..n).filter(|&v| clamp[v].is_none()) {
            let used: Vec<usize> = neighbours[v]
                .iter()
                .map(|e| colour[e[0] as usize])
                .filter(|&c| c != usize::MAX)
                .collect();
            let c = (0..).find(|c| !used.contains(c)).unwrap_or(0);
            colour[v] = c;
            n_colours = n_colours.max(c + 1);
        }
        let mut order = Vec::new();
        let mut colours = Vec::new();
        for c in 0..n_colours {
            let start = order.len() as u32;
            order.extend((0..n).filter(|&v| colour[v] == c).map(|v| v as u32));
            colours.push((start, order.len() as u32 - start));
        }
        Ok(GpuProgram {
            n_vars: n,
            is_spin: (0..n)
                .map(|v| program.var_kind(v) == VarKind::Spin)
                .collect(),
            states,
            var_info,
            adj,
            tables,
            order,
            colours,
            clamp,
        })
    }

    pub fn colours(&self) -> usize {
        self.colours.len()
    }
}

fn storage(device: &wgpu::Device, label: &str, bytes: &[u8], writable: bool) -> wgpu::Buffer {
    // wgpu rejects empty bindings: pad to one word.
    let padded;
    let contents = if bytes.is_empty() {
        padded = [0u8; 4];
        &padded[..]
    } else {
        bytes
    };
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents,
        usage: wgpu::BufferUsages::STORAGE
            | if writable {
                wgpu::BufferUsages::COPY_SRC
            } else {
                wgpu::BufferUsages::empty()
            },
    })
}

impl GpuDevice {
    /// Acquires any adapter (`THERMOROUTE_GPU=off` pretends there is none).
    pub fn acquire() -> Result<GpuDevice, GpuError> {
        if std::env::var("THERMOROUTE_GPU").is_ok_and(|v| v == "off") {
            return Err(GpuError::Unavailable(
                "disabled by THERMOROUTE_GPU=off".into(),
            ));
        }
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            ..Default::default()
        }))
        .map_err(|e| {
            GpuError::Unavailable(format!(
                "{e} (install a GPU driver, or Mesa's Vulkan driver: apt-get install mesa-vulkan-drivers)"
            ))
        })?;
        let raw = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("thermoroute"),
            // Six storage buffers per stage and large draws buffers: ask for
            // what the adapter has.
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::Unavailable(format!("{}: {e}", raw.name)))?;
        let info = AdapterInfo {
            name: raw.name.clone(),
            backend: format!("{:?}", raw.backend).to_lowercase(),
            device_type: format!("{:?}", raw.device_type),
            driver: format!("{} {}", raw.driver, raw.driver_info)
                .trim()
                .to_string(),
        };
        // Validation errors become typed errors, not panics.
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("gibbs"),
            source: wgpu::ShaderSource::Wgsl(include_str!("gibbs.wgsl").into()),
        });
        let entry =
            |binding: u32, ty: wgpu::BufferBindingType, dynamic: bool| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty,
                    has_dynamic_offset: dynamic,
                    min_binding_size: None,
                },
                count: None,
            };
        let read = wgpu::BufferBindingType::Storage { read_only: true };
        let write = wgpu::BufferBindingType::Storage { read_only: false };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("gibbs"),
            entries: &[
                entry(0, wgpu::BufferBindingType::Uniform, true),
                entry(1, read, false),
                entry(2, read, false),
                entry(3, read, false),
                entry(4, read, false),
                entry(5, write, false),
                entry(6, write, false),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("gibbs"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = |entry_point: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry_point),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry_point),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let sweep = pipeline("sweep_color");
        let record = pipeline("record");
        let dense = dense::DensePipeline::new(&device);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Unavailable(format!("{}: {e}", info.name)));
        }
        Ok(GpuDevice {
            device,
            queue,
            info,
            layout,
            sweep,
            record,
            dense,
        })
    }

    /// Samples `program` with `seed`: the same seed gives the same draws on
    /// the same adapter.
    pub fn sample(&self, program: &EProgram, seed: u64) -> Result<Draws, GpuError> {
        let gp = GpuProgram::compile(program)?;
        let schedule = program.schedule;
        let chains = schedule.chains as usize;
        let samples = schedule.samples as usize;
        let n = gp.n_vars;
        let started = std::time::Instant::now();
        // Initial states: uniform per free variable, from the seed.
        let mut init = vec![0u32; chains * n];
        for c in 0..chains {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(c as u64 + 1);
            for v in 0..n {
                init[c * n + v] = match gp.clamp[v] {
                    Some(s) => s,
                    None => rng.random_range(0..gp.states[v] as u32),
                };
            }
        }
        let d = &self.device;
        let draws_len = chains * samples * n;
        let draws_bytes = (draws_len.max(1) * 4) as u64;
        let limit = d.limits().max_storage_buffer_binding_size;
        if draws_bytes > limit {
            return Err(GpuError::Unsupported(format!(
                "{draws_bytes} bytes of draws exceed the adapter's {limit}-byte buffers"
            )));
        }
        let order = storage(d, "order", bytemuck::cast_slice(&gp.order), false);
        let info = storage(d, "var_info", bytemuck::cast_slice(&gp.var_info), false);
        let adj = storage(d, "adj", bytemuck::cast_slice(&gp.adj), false);
        let tables = storage(d, "tables", bytemuck::cast_slice(&gp.tables), false);
        let state = storage(d, "state", bytemuck::cast_slice(&init), true);
        let draws = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("draws"),
            size: draws_bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let params = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: PARAM_STRIDE * PARAMS_PER_SUBMIT as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind = d.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("gibbs"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &params,
                        offset: 0,
                        size: wgpu::BufferSize::new(48),
                    }),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: order.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: info.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: adj.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: tables.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 5,
                    resource: state.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 6,
                    resource: draws.as_entire_binding(),
                },
            ],
        });
        // Every dispatch in order: (pipeline is record?, params).
        let total_sweeps = schedule.warmup + schedule.samples * schedule.steps_per_sample;
        let mut dispatches: Vec<(bool, [u32; 12])> = Vec::new();
        let mut sample_index = 0u32;
        let seed_words = [seed as u32, (seed >> 32) as u32];
        let flush = |dispatches: &mut Vec<(bool, [u32; 12])>| {
            if dispatches.is_empty() {
                return;
            }
            let mut bytes = vec![0u8; dispatches.len() * PARAM_STRIDE as usize];
            for (i, (_, p)) in dispatches.iter().enumerate() {
                let at = i * PARAM_STRIDE as usize;
                bytes[at..at + 48].copy_from_slice(bytemuck::cast_slice(p));
            }
            self.queue.write_buffer(&params, 0, &bytes);
            let mut encoder = d.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                for (i, (is_record, p)) in dispatches.iter().enumerate() {
                    pass.set_pipeline(if *is_record {
                        &self.record
                    } else {
                        &self.sweep
                    });
                    pass.set_bind_group(0, &bind, &[(i as u64 * PARAM_STRIDE) as u32]);
                    let work = if *is_record { p[0] * p[1] } else { p[3] * p[1] };
                    pass.dispatch_workgroups(work.div_ceil(64), 1, 1);
                }
            }
            self.queue.submit([encoder.finish()]);
            dispatches.clear();
        };
        for sweep in 0..total_sweeps {
            for &(start, len) in &gp.colours {
                if len == 0 {
                    continue;
                }
                dispatches.push((
                    false,
                    [
                        n as u32,
                        chains as u32,
                        start,
                        len,
                        sweep as u32,
                        seed_words[0],
                        seed_words[1],
                        0,
                        samples as u32,
                        0,
                        0,
                        0,
                    ],
                ));
            }
            let done = sweep + 1;
            if done > schedule.warmup
                && (done - schedule.warmup).is_multiple_of(schedule.steps_per_sample)
            {
                dispatches.push((
                    true,
                    [
                        n as u32,
                        chains as u32,
                        0,
                        0,
                        sweep as u32,
                        seed_words[0],
                        seed_words[1],
                        sample_index,
                        samples as u32,
                        0,
                        0,
                        0,
                    ],
                ));
                sample_index += 1;
            }
            if dispatches.len() + gp.colours.len() + 1 > PARAMS_PER_SUBMIT {
                flush(&mut dispatches);
            }
        }
        flush(&mut dispatches);
        // One readback of every draw.
        let staging = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: draws_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = d.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&draws, 0, &staging, 0, draws_bytes);
        self.queue.submit([encoder.finish()]);
        let slice = staging.slice(..);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        d.poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Device(e.to_string()))?;
        let values: Vec<i8> = {
            let mapped = slice
                .get_mapped_range()
                .map_err(|e| GpuError::Device(e.to_string()))?;
            let raw: &[u32] = bytemuck::cast_slice(&mapped);
            raw[..draws_len]
                .iter()
                .enumerate()
                .map(|(i, &s)| {
                    if gp.is_spin[i % n] {
                        if s == 1 { 1 } else { -1 }
                    } else {
                        s as i8
                    }
                })
                .collect()
        };
        let free = gp.order.len() as u64;
        Ok(Draws {
            chains,
            samples,
            n_vars: n,
            states: gp.states.clone(),
            is_spin: gp.is_spin.clone(),
            values,
            spin_updates: free * total_sweeps * chains as u64,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}
