//! Element-wise ops and reductions on the GPU.

use std::time::Instant;

use super::{Binding, GpuDevice, GpuError, GpuTime, bind_all, grid, pipelines};

/// Threads per workgroup in `elementwise.wgsl`.
const WG: u32 = 256;

/// Two-operand element-wise ops (an operand of one element broadcasts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    Add,
    Mul,
}

/// One-operand element-wise ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unary {
    Relu,
    Tanh,
    Sigmoid,
}

/// Reductions along one axis (or all elements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    Mean,
    Max,
}

/// The map and reduce pipelines, built with the device.
pub(super) struct ElementwisePipelines {
    layout: wgpu::BindGroupLayout,
    map: wgpu::ComputePipeline,
    reduce: wgpu::ComputePipeline,
}

impl ElementwisePipelines {
    pub(super) fn new(device: &wgpu::Device) -> ElementwisePipelines {
        let (layout, [map, reduce]) = pipelines(
            device,
            "elementwise",
            include_str!("elementwise.wgsl"),
            &[
                Binding::Uniform { dynamic: false },
                Binding::Read,
                Binding::Read,
                Binding::Write,
            ],
            ["map", "reduce"],
        );
        ElementwisePipelines {
            layout,
            map,
            reduce,
        }
    }
}

impl GpuDevice {
    /// `a op b` element by element; equal lengths, or either of length 1.
    pub fn binary(
        &self,
        op: Binary,
        a: &[f32],
        b: &[f32],
    ) -> Result<(Vec<f32>, GpuTime), GpuError> {
        if a.len() != b.len() && a.len() != 1 && b.len() != 1 {
            return Err(GpuError::Unsupported(format!(
                "element-wise {op:?} of {} and {} values",
                a.len(),
                b.len()
            )));
        }
        let code = match op {
            Binary::Add => 0,
            Binary::Mul => 1,
        };
        self.map(code, a, b, a.len().max(b.len()))
    }

    /// `op(a)` element by element.
    pub fn unary(&self, op: Unary, a: &[f32]) -> Result<(Vec<f32>, GpuTime), GpuError> {
        let code = match op {
            Unary::Relu => 2,
            Unary::Tanh => 3,
            Unary::Sigmoid => 4,
        };
        self.map(code, a, &[0.0], a.len())
    }

    fn map(
        &self,
        op: u32,
        a: &[f32],
        b: &[f32],
        n: usize,
    ) -> Result<(Vec<f32>, GpuTime), GpuError> {
        if n == 0 {
            return Ok((Vec::new(), zero_time()));
        }
        let started = Instant::now();
        let none = wgpu::BufferUsages::empty();
        let params = self.uniform(
            "map params",
            &[n as u32, a.len() as u32, b.len() as u32, op],
        );
        let (a_buf, b_buf) = (self.upload("a", a, none), self.upload("b", b, none));
        let bytes = (n * 4) as u64;
        let out = self.output("out", bytes);
        let groups = grid((n as u32).div_ceil(WG));
        self.launch(
            &self.elementwise.map,
            [&params, &a_buf, &b_buf, &out],
            groups,
            (&out, bytes),
            started,
        )
    }

    /// Reduces `a`, viewed as `[outer, len, inner]` in row-major order, along
    /// its middle axis: `outer * inner` results. `len` must be at least 1.
    pub fn reduce(
        &self,
        op: Reduce,
        a: &[f32],
        outer: usize,
        len: usize,
        inner: usize,
    ) -> Result<(Vec<f32>, GpuTime), GpuError> {
        if a.len() != outer * len * inner || len == 0 {
            return Err(GpuError::Unsupported(format!(
                "{op:?} of {} values viewed as [{outer}, {len}, {inner}]",
                a.len()
            )));
        }
        let outputs = outer * inner;
        if outputs == 0 {
            return Ok((Vec::new(), zero_time()));
        }
        let started = Instant::now();
        let code = match op {
            Reduce::Sum => 0u32,
            Reduce::Mean => 1,
            Reduce::Max => 2,
        };
        let none = wgpu::BufferUsages::empty();
        let params = self.uniform(
            "reduce params",
            &[outer as u32, len as u32, inner as u32, code],
        );
        let a_buf = self.upload("a", a, none);
        let b_buf = self.upload("unused", &[0.0f32], none);
        let bytes = (outputs * 4) as u64;
        let out = self.output("out", bytes);
        let groups = grid(outputs as u32);
        self.launch(
            &self.elementwise.reduce,
            [&params, &a_buf, &b_buf, &out],
            groups,
            (&out, bytes),
            started,
        )
    }

    fn launch(
        &self,
        pipeline: &wgpu::ComputePipeline,
        buffers: [&wgpu::Buffer; 4],
        (x, y): (u32, u32),
        (out, bytes): (&wgpu::Buffer, u64),
        started: Instant,
    ) -> Result<(Vec<f32>, GpuTime), GpuError> {
        let bind = bind_all(
            &self.device,
            "elementwise",
            &self.elementwise.layout,
            &buffers,
        );
        let stamp = self.stamp();
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("elementwise"),
                timestamp_writes: stamp.as_ref().map(|s| s.writes()),
            });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
        let (raw, time) = self.finish(encoder, stamp, Some((out, 0, bytes)), started)?;
        Ok((bytemuck::pod_collect_to_vec::<u8, f32>(&raw), time))
    }
}

pub(super) fn zero_time() -> GpuTime {
    GpuTime {
        wall_seconds: 0.0,
        busy_seconds: 0.0,
    }
}
