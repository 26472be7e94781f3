//! Chromatic block Gibbs on the GPU ("GPU-sim"): programs laid out as
//! log-potential tables, one dispatch per colour per sweep, draws recorded
//! on the device and read back once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::backend::backend_error;
use super::pool::Pooled;
use super::{Binding, GpuDevice, GpuError, GpuTime, MAX_STATES, pipelines};
use crate::backends::{BackendError, SamplingTask, SliceCost};
use crate::model::EProgram;
use crate::model::eprogram::VarKind;
use crate::sampler::Draws;
use crate::sampler::blocks::k_subsets;

/// Entries of the per-dispatch parameter buffer (each 256 bytes apart, the
/// dynamic-offset alignment every adapter accepts).
const PARAM_STRIDE: u64 = 256;
/// Dispatches encoded into one compute pass (4 MiB of parameters).
const DISPATCHES_PER_PASS: usize = 16_384;
/// Largest draws buffer on the device; longer runs read back as they go.
const DRAWS_WINDOW_BYTES: u64 = 64 << 20;

/// The sweep and record pipelines, built with the device.
pub(super) struct GibbsPipelines {
    layout: wgpu::BindGroupLayout,
    sweep: wgpu::ComputePipeline,
    record: wgpu::ComputePipeline,
}

impl GibbsPipelines {
    pub(super) fn new(device: &wgpu::Device) -> GibbsPipelines {
        let (layout, [sweep, record]) = pipelines(
            device,
            "gibbs",
            include_str!("gibbs.wgsl"),
            &[
                Binding::Uniform { dynamic: true },
                Binding::Read,
                Binding::Read,
                Binding::Read,
                Binding::Read,
                Binding::Write,
                Binding::Write,
            ],
            ["sweep_color", "record"],
        );
        GibbsPipelines {
            layout,
            sweep,
            record,
        }
    }
}

/// A program laid out for the kernel. The kernel updates *units*: a free
/// variable, a clamped one (never updated), or the free spins of one hard
/// constraint, whose states are exactly the configurations that satisfy it
/// (as in the CPU's block kernel). Every potential becomes a table over the
/// states of the one or two units it touches.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuProgram {
    pub n_vars: usize,
    pub states: Vec<usize>,
    pub is_spin: Vec<bool>,
    n_units: usize,
    /// Per unit: states, unary offset, adjacency start, adjacency end.
    var_info: Vec<[u32; 4]>,
    adj: Vec<[u32; 2]>,
    tables: Vec<f32>,
    /// Free units grouped by colour, and each colour's (start, len).
    order: Vec<u32>,
    colours: Vec<(u32, u32)>,
    /// Per unit: its clamped state, if clamped.
    clamp: Vec<Option<u32>>,
    /// Per variable: (unit, index among the unit's members).
    place: Vec<(u32, u32)>,
    /// Per unit: its members, and each configuration's member states
    /// (`configs[c * members + m]`); a plain variable's state is its config.
    members: Vec<Vec<usize>>,
    configs: Vec<Option<Vec<u8>>>,
}

fn spin_value(state: usize) -> f64 {
    if state == 1 { 1.0 } else { -1.0 }
}

/// A log-potential (β folded in) as a function of its variables' states.
type LogPotential<'p> = Box<dyn Fn(&[usize]) -> f64 + 'p>;

/// One potential: the variables it reads and its value.
struct Term<'p> {
    vars: Vec<usize>,
    value: LogPotential<'p>,
}

impl GpuProgram {
    /// Builds unary and pairwise log-potential tables over units (inverse
    /// temperature folded in) and a greedy colouring, or says why the kernel
    /// cannot run the program.
    pub fn compile(program: &EProgram) -> Result<GpuProgram, GpuError> {
        if let Err(inf) = program.feasibility("$") {
            return Err(GpuError::Unsupported(format!(
                "infeasible: {} ({})",
                inf.explanation, inf.constraint
            )));
        }
        let n = program.n_vars();
        let states: Vec<usize> = (0..n).map(|v| program.var_kind(v).states()).collect();
        let clamped = program.clamped_states();
        let beta = program.beta;

        // Units: each constraint's free spins, then every other variable.
        let mut place = vec![(u32::MAX, 0u32); n];
        let mut members: Vec<Vec<usize>> = Vec::new();
        let mut configs: Vec<Option<Vec<u8>>> = Vec::new();
        let mut unit_states: Vec<usize> = Vec::new();
        let mut clamp: Vec<Option<u32>> = Vec::new();
        for (c, con) in program.constraints.iter().enumerate() {
            let free: Vec<usize> = con
                .vars
                .iter()
                .copied()
                .filter(|&v| clamped[v].is_none())
                .collect();
            if free.is_empty() {
                continue;
            }
            let up = con.vars.iter().filter(|&&v| clamped[v] == Some(1)).count();
            let table = k_subsets(free.len(), con.required_up() - up);
            let count = table.len() / free.len();
            if count > MAX_STATES {
                return Err(GpuError::Unsupported(format!(
                    "constraint {c} leaves {count} configurations of its {} free spins (at most {MAX_STATES})",
                    free.len()
                )));
            }
            for (m, &v) in free.iter().enumerate() {
                place[v] = (members.len() as u32, m as u32);
            }
            unit_states.push(count);
            members.push(free);
            configs.push(Some(table));
            clamp.push(None);
        }
        for v in 0..n {
            if place[v].0 == u32::MAX {
                if states[v] > MAX_STATES {
                    return Err(GpuError::Unsupported(format!(
                        "variable {v} has {} states (at most {MAX_STATES})",
                        states[v]
                    )));
                }
                place[v] = (members.len() as u32, 0);
                unit_states.push(states[v]);
                members.push(vec![v]);
                configs.push(None);
                clamp.push(clamped[v].map(u32::from));
            }
        }
        let n_units = members.len();
        let state_of = |v: usize, unit_state: usize| -> usize {
            let (u, m) = place[v];
            match &configs[u as usize] {
                Some(table) => table[unit_state * members[u as usize].len() + m as usize] as usize,
                None => unit_state,
            }
        };

        // Every potential as a term over variables.
        let mut terms: Vec<Term<'_>> = Vec::new();
        if let Some(ising) = &program.ising {
            for (i, &b) in ising.biases.iter().enumerate() {
                terms.push(Term {
                    vars: vec![i],
                    value: Box::new(move |s| beta * b * spin_value(s[0])),
                });
            }
            for (&[i, j], &w) in ising.edges.iter().zip(&ising.weights) {
                terms.push(Term {
                    vars: vec![i, j],
                    value: Box::new(move |s| beta * w * spin_value(s[0]) * spin_value(s[1])),
                });
            }
        }
        let n_spins = program.n_spins();
        for (c, var) in program.categorical.iter().enumerate() {
            if let Some(lp) = &var.log_potential {
                terms.push(Term {
                    vars: vec![n_spins + c],
                    value: Box::new(move |s| beta * lp[s[0]]),
                });
            }
        }
        for f in &program.factors {
            let strides: Vec<usize> = (0..f.vars.len())
                .map(|k| f.vars[k + 1..].iter().map(|&v| states[v]).product())
                .collect();
            let table = &f.log_potential;
            terms.push(Term {
                vars: f.vars.clone(),
                value: Box::new(move |s| {
                    beta * table[s.iter().zip(&strides).map(|(x, st)| x * st).sum::<usize>()]
                }),
            });
        }

        // Fold each term into the table of the one or two units it touches.
        let mut unary: Vec<Vec<f64>> = unit_states.iter().map(|&k| vec![0.0; k]).collect();
        // (a, b) with a < b -> table [s_a][s_b].
        let mut pairs: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
        let mut var_states = Vec::new();
        for (t, term) in terms.iter().enumerate() {
            let mut touched: Vec<usize> = term.vars.iter().map(|&v| place[v].0 as usize).collect();
            touched.sort_unstable();
            touched.dedup();
            match touched[..] {
                [u] => {
                    for (su, x) in unary[u].iter_mut().enumerate() {
                        var_states.clear();
                        var_states.extend(term.vars.iter().map(|&v| state_of(v, su)));
                        *x += (term.value)(&var_states);
                    }
                }
                [a, b] => {
                    let (ka, kb) = (unit_states[a], unit_states[b]);
                    let table = pairs.entry((a, b)).or_insert_with(|| vec![0.0; ka * kb]);
                    for sa in 0..ka {
                        for sb in 0..kb {
                            var_states.clear();
                            var_states.extend(term.vars.iter().map(|&v| {
                                state_of(v, if place[v].0 as usize == a { sa } else { sb })
                            }));
                            table[sa * kb + sb] += (term.value)(&var_states);
                        }
                    }
                }
                _ => {
                    return Err(GpuError::Unsupported(format!(
                        "potential {t} couples {} variables across {} units (the kernel runs unary and pairwise potentials between variables or constrained blocks)",
                        term.vars.len(),
                        touched.len()
                    )));
                }
            }
        }

        // Both orientations of every pair table, and the adjacency lists.
        let mut tables: Vec<f32> = Vec::new();
        let mut unary_off = vec![0u32; n_units];
        for u in 0..n_units {
            unary_off[u] = tables.len() as u32;
            tables.extend(unary[u].iter().map(|&x| x as f32));
        }
        let mut neighbours: Vec<Vec<[u32; 2]>> = vec![Vec::new(); n_units];
        for (&(a, b), t) in &pairs {
            let (ka, kb) = (unit_states[a], unit_states[b]);
            neighbours[a].push([b as u32, tables.len() as u32]);
            tables.extend(t.iter().map(|&x| x as f32));
            neighbours[b].push([a as u32, tables.len() as u32]);
            for sb in 0..kb {
                for sa in 0..ka {
                    tables.push(t[sa * kb + sb] as f32);
                }
            }
        }
        let mut adj = Vec::new();
        let mut var_info = Vec::with_capacity(n_units);
        for u in 0..n_units {
            let start = adj.len() as u32;
            adj.extend(neighbours[u].iter().copied());
            var_info.push([unit_states[u] as u32, unary_off[u], start, adj.len() as u32]);
        }
        // Greedy colouring of the free units.
        let mut colour = vec![usize::MAX; n_units];
        let mut n_colours = 0;
        for u in (0..n_units).filter(|&u| clamp[u].is_none()) {
            let used: Vec<usize> = neighbours[u]
                .iter()
                .map(|e| colour[e[0] as usize])
                .filter(|&c| c != usize::MAX)
                .collect();
            let c = (0..).find(|c| !used.contains(c)).unwrap_or(0);
            colour[u] = c;
            n_colours = n_colours.max(c + 1);
        }
        let mut order = Vec::new();
        let mut colours = Vec::new();
        for c in 0..n_colours {
            let start = order.len() as u32;
            order.extend((0..n_units).filter(|&u| colour[u] == c).map(|u| u as u32));
            colours.push((start, order.len() as u32 - start));
        }
        Ok(GpuProgram {
            n_vars: n,
            is_spin: (0..n)
                .map(|v| program.var_kind(v) == VarKind::Spin)
                .collect(),
            states,
            n_units,
            var_info,
            adj,
            tables,
            order,
            colours,
            clamp,
            place,
            members,
            configs,
        })
    }

    pub fn colours(&self) -> usize {
        self.colours.len()
    }

    /// Variable `v`'s state when its unit is in `unit_state`.
    fn var_state(&self, v: usize, unit_state: usize) -> usize {
        let (u, m) = self.place[v];
        match &self.configs[u as usize] {
            Some(table) => table[unit_state * self.members[u as usize].len() + m as usize] as usize,
            None => unit_state,
        }
    }

    /// Variable updates one sweep of one chain performs.
    fn updates_per_sweep(&self) -> u64 {
        self.order
            .iter()
            .map(|&u| self.members[u as usize].len() as u64)
            .sum()
    }
}

/// Sampling in progress on the GPU: state and draws stay on the device
/// between slices; draws are read back when asked for.
pub struct GpuSampling {
    gpu: Arc<GpuDevice>,
    program: GpuProgram,
    chains: usize,
    samples: usize,
    warmup: u64,
    steps_per_sample: u64,
    total_sweeps: u64,
    seed: [u32; 2],
    sweeps_done: u64,
    samples_done: usize,
    /// Order, var_info, adjacency, tables, state, draws.
    buffers: [Pooled; 6],
    /// Samples the device's draws buffer holds: a window, reused round
    /// robin, read back before it fills.
    window: usize,
    /// Draws read back so far (state indices), sample-major
    /// (`[sample][chain][var]`, as the kernel records them): each recorded
    /// sample crosses the bus once.
    host_draws: Vec<u8>,
    /// Time spent on the device so far.
    time: GpuTime,
    /// Watts while busy, for each slice's energy.
    active_w: f64,
}

impl std::fmt::Debug for GpuSampling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuSampling")
            .field("adapter", &self.gpu.info.name)
            .field("n_vars", &self.program.n_vars)
            .field("chains", &self.chains)
            .field("sweeps_done", &self.sweeps_done)
            .field("total_sweeps", &self.total_sweeps)
            .finish_non_exhaustive()
    }
}

impl GpuSampling {
    /// Lays `program` out on the device with every chain's initial state
    /// drawn from `seed`.
    pub fn new(gpu: Arc<GpuDevice>, program: &EProgram, seed: u64) -> Result<Self, GpuError> {
        let gp = GpuProgram::compile(program)?;
        let schedule = program.schedule;
        let chains = schedule.chains as usize;
        let samples = schedule.samples as usize;
        // The device holds one state per unit (see `GpuProgram`).
        let n = gp.n_units;
        let mut init = vec![0u32; chains * n];
        for c in 0..chains {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(c as u64 + 1);
            for u in 0..n {
                init[c * n + u] = match gp.clamp[u] {
                    Some(s) => s,
                    None => rng.random_range(0..gp.var_info[u][0]),
                };
            }
        }
        let per_sample = (chains * n * 4) as u64;
        let limit = gpu
            .device
            .limits()
            .max_storage_buffer_binding_size
            .min(DRAWS_WINDOW_BYTES);
        if per_sample > limit {
            return Err(GpuError::Unsupported(format!(
                "one sample of every chain takes {per_sample} bytes, past the {limit}-byte draws buffer"
            )));
        }
        let window = ((limit / per_sample.max(1)) as usize).clamp(1, samples.max(1));
        let draws_bytes = window as u64 * per_sample;
        let none = wgpu::BufferUsages::empty();
        let buffers = [
            gpu.upload("order", &gp.order, none),
            gpu.upload("var_info", &gp.var_info, none),
            gpu.upload("adj", &gp.adj, none),
            gpu.upload("tables", &gp.tables, none),
            gpu.upload("state", &init, none),
            gpu.output("draws", draws_bytes),
        ];
        Ok(GpuSampling {
            gpu,
            chains,
            samples,
            warmup: schedule.warmup,
            steps_per_sample: schedule.steps_per_sample,
            total_sweeps: schedule.warmup + schedule.samples * schedule.steps_per_sample,
            seed: [seed as u32, (seed >> 32) as u32],
            sweeps_done: 0,
            samples_done: 0,
            buffers,
            window,
            host_draws: Vec::with_capacity(chains * samples * n),
            time: GpuTime {
                wall_seconds: 0.0,
                busy_seconds: 0.0,
            },
            active_w: 0.0,
            program: gp,
        })
    }

    /// Device time spent so far.
    pub fn time(&self) -> GpuTime {
        self.time
    }

    /// Sets the power the device draws while busy, so that each slice
    /// reports its energy (power × busy time).
    pub fn with_active_power(mut self, watts: f64) -> Self {
        self.active_w = watts;
        self
    }

    /// Runs up to `sweeps` more sweeps of every chain and waits for them.
    pub fn run_sweeps(&mut self, sweeps: u64) -> Result<GpuTime, GpuError> {
        let end = (self.sweeps_done + sweeps).min(self.total_sweeps);
        let n = self.program.n_units as u32;
        let chains = self.chains as u32;
        let mut spent = GpuTime {
            wall_seconds: 0.0,
            busy_seconds: 0.0,
        };
        // (is a record dispatch, parameters)
        let mut dispatches: Vec<(bool, [u32; 12])> = Vec::new();
        while self.sweeps_done < end {
            let sweep = self.sweeps_done;
            for &(start, len) in &self.program.colours {
                if len > 0 {
                    dispatches.push((false, self.params(start, len, sweep, 0)));
                }
            }
            self.sweeps_done += 1;
            let done = self.sweeps_done;
            if done > self.warmup && (done - self.warmup).is_multiple_of(self.steps_per_sample) {
                let slot = (self.samples_done % self.window) as u32;
                dispatches.push((true, self.params(0, 0, sweep, slot)));
                self.samples_done += 1;
            }
            // Read back before the window wraps, so that every range read is
            // contiguous and nothing is overwritten unread.
            let window_full = self.samples_done.is_multiple_of(self.window)
                && self.samples_done * self.chains * self.program.n_units > self.host_draws.len();
            if dispatches.len() + self.program.colours.len() + 1 > DISPATCHES_PER_PASS
                || self.sweeps_done == end
                || window_full
            {
                let t = self.submit(&dispatches, n, chains)?;
                spent.wall_seconds += t.wall_seconds;
                spent.busy_seconds += t.busy_seconds;
                dispatches.clear();
            }
        }
        self.time.wall_seconds += spent.wall_seconds;
        self.time.busy_seconds += spent.busy_seconds;
        Ok(spent)
    }

    fn params(&self, start: u32, len: u32, sweep: u64, sample: u32) -> [u32; 12] {
        [
            self.program.n_units as u32,
            self.chains as u32,
            start,
            len,
            sweep as u32,
            self.seed[0],
            self.seed[1],
            sample,
            self.samples as u32,
            0,
            0,
            0,
        ]
    }

    fn submit(
        &mut self,
        dispatches: &[(bool, [u32; 12])],
        n: u32,
        chains: u32,
    ) -> Result<GpuTime, GpuError> {
        let started = Instant::now();
        let gpu = &*self.gpu;
        let mut bytes = vec![0u8; dispatches.len() * PARAM_STRIDE as usize];
        for (i, (_, p)) in dispatches.iter().enumerate() {
            let at = i * PARAM_STRIDE as usize;
            bytes[at..at + 48].copy_from_slice(bytemuck::cast_slice(p));
        }
        let params = gpu.uniform("gibbs params", &bytes);
        fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
            wgpu::BindGroupEntry {
                binding,
                resource: buffer.as_entire_binding(),
            }
        }
        let [order, info, adj, tables, state, draws] = &self.buffers;
        let bind = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("gibbs"),
            layout: &gpu.gibbs.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &params,
                        offset: 0,
                        size: wgpu::BufferSize::new(48),
                    }),
                },
                entry(1, order),
                entry(2, info),
                entry(3, adj),
                entry(4, tables),
                entry(5, state),
                entry(6, draws),
            ],
        });
        let stamp = gpu.stamp();
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("gibbs"),
                timestamp_writes: stamp.as_ref().map(|s| s.writes()),
            });
            for (i, (is_record, p)) in dispatches.iter().enumerate() {
                let pipeline = if *is_record {
                    &gpu.gibbs.record
                } else {
                    &gpu.gibbs.sweep
                };
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, &bind, &[(i as u64 * PARAM_STRIDE) as u32]);
                let work = if *is_record {
                    n * chains
                } else {
                    p[3] * chains
                };
                let (x, y) = super::grid(work.div_ceil(64));
                pass.dispatch_workgroups(x, y, 1);
            }
        }
        // The samples this pass recorded come back with it.
        let per_sample = self.chains * self.program.n_units;
        let read = self.host_draws.len() / per_sample.max(1);
        let fresh = self.samples_done - read;
        let from = ((read % self.window) * per_sample * 4) as u64;
        let new =
            Some((&*self.buffers[5], from, (fresh * per_sample * 4) as u64)).filter(|o| o.2 > 0);
        let (raw, time) = gpu.finish(encoder, stamp, new, started)?;
        // States are below MAX_STATES (64): a byte each on the host.
        self.host_draws.extend(
            bytemuck::pod_collect_to_vec::<u8, u32>(&raw)
                .into_iter()
                .map(|s| s as u8),
        );
        Ok(time)
    }
}

impl SamplingTask for GpuSampling {
    fn advance(&mut self, sweeps: u64) -> Result<SliceCost, BackendError> {
        let time = self.run_sweeps(sweeps).map_err(backend_error)?;
        Ok(SliceCost {
            seconds: time.wall_seconds,
            device_seconds: None,
            cycles: None,
            energy_j: Some(self.active_w * time.busy_seconds),
        })
    }

    fn sweeps_done(&self) -> u64 {
        self.sweeps_done
    }

    fn total_sweeps(&self) -> u64 {
        self.total_sweeps
    }

    fn samples_done(&self) -> usize {
        self.samples_done
    }

    fn total_samples(&self) -> usize {
        self.samples
    }

    /// The draws recorded so far (every requested sample once done).
    fn draws(&self) -> Draws {
        let gp = &self.program;
        let (n, units) = (gp.n_vars, gp.n_units);
        let done = self.samples_done;
        let mut values = vec![0i8; self.chains * done * n];
        for (at, row) in self.host_draws.chunks_exact(units.max(1)).enumerate() {
            let (sample, chain) = (at / self.chains, at % self.chains);
            let out = &mut values[(chain * done + sample) * n..][..n];
            for (v, x) in out.iter_mut().enumerate() {
                let s = gp.var_state(v, row[gp.place[v].0 as usize] as usize);
                *x = if gp.is_spin[v] {
                    if s == 1 { 1 } else { -1 }
                } else {
                    s as i8
                };
            }
        }
        Draws {
            chains: self.chains,
            samples: done,
            n_vars: n,
            states: self.program.states.clone(),
            is_spin: self.program.is_spin.clone(),
            values,
            spin_updates: gp.updates_per_sweep() * self.sweeps_done * self.chains as u64,
            seconds: self.time.wall_seconds,
        }
    }

    fn provenance(&self) -> Vec<(&'static str, String)> {
        let info = &self.gpu.info;
        vec![
            ("adapter", info.name.clone()),
            ("adapter_backend", info.backend.clone()),
            ("gpu_timing", info.timing.clone()),
        ]
    }
}

/// Sweeps per submission when a whole run is sampled in one call.
const SWEEPS_PER_CALL: u64 = 256;

impl GpuDevice {
    /// Samples `program` with `seed`: the same seed gives the same draws on
    /// the same adapter.
    pub fn sample(self: &Arc<Self>, program: &EProgram, seed: u64) -> Result<Draws, GpuError> {
        let mut run = GpuSampling::new(self.clone(), program, seed)?;
        while !run.is_done() {
            run.run_sweeps(SWEEPS_PER_CALL)?;
        }
        Ok(run.draws())
    }
}
