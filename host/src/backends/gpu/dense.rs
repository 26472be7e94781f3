//! Dense kernels on the GPU: tiled matrix products with a fused bias and
//! activation, and MLP inference built from them.

use std::time::Instant;

use super::elementwise::zero_time;
use super::{Binding, GpuDevice, GpuError, GpuTime, bind_all, pipelines};
use crate::backends::cpu::kernels::materialise;
use crate::model::graph::{Activation, NnSpec};

/// The dense-layer pipeline, built with the device.
pub(super) struct DensePipeline {
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

impl DensePipeline {
    pub(super) fn new(device: &wgpu::Device) -> DensePipeline {
        let (layout, [pipeline]) = pipelines(
            device,
            "dense",
            include_str!("dense.wgsl"),
            &[
                Binding::Uniform { dynamic: false },
                Binding::Read,
                Binding::Read,
                Binding::Read,
                Binding::Write,
            ],
            ["dense"],
        );
        DensePipeline { layout, pipeline }
    }
}

fn activation_code(a: Activation) -> u32 {
    match a {
        Activation::Identity => 0,
        Activation::Relu => 1,
        Activation::Tanh => 2,
        Activation::Sigmoid => 3,
    }
}

impl GpuDevice {
    /// `act(A · Bᵀ + bias)` for A `[m, k]` and B `[n, k]`, row-major.
    pub fn dense(
        &self,
        a: &[f32],
        m: usize,
        k: usize,
        b: &[f32],
        n: usize,
        bias: Option<&[f32]>,
        activation: Activation,
    ) -> Result<(Vec<f32>, GpuTime), GpuError> {
        if a.len() != m * k || b.len() != n * k || bias.is_some_and(|x| x.len() != n) {
            return Err(GpuError::Unsupported(format!(
                "shapes do not agree: A has {} values for [{m}, {k}], B {} for [{n}, {k}]",
                a.len(),
                b.len()
            )));
        }
        if m == 0 || n == 0 {
            return Ok((Vec::new(), zero_time()));
        }
        let started = Instant::now();
        let none = wgpu::BufferUsages::empty();
        let zeros;
        let bias = match bias {
            Some(x) => x,
            None => {
                zeros = vec![0.0f32; n];
                &zeros
            }
        };
        let dims = self.uniform(
            "dims",
            &[m as u32, n as u32, k as u32, activation_code(activation)],
        );
        let (a_buf, b_buf, bias_buf) = (
            self.upload("a", a, none),
            self.upload("b", b, none),
            self.upload("bias", bias, none),
        );
        let bytes = (m * n * 4) as u64;
        let c = self.output("c", bytes);
        let bind = bind_all(
            &self.device,
            "dense",
            &self.dense.layout,
            &[&dims, &a_buf, &b_buf, &bias_buf, &c],
        );
        let (x, y) = ((n as u32).div_ceil(16), (m as u32).div_ceil(16));
        if x > 65_535 || y > 65_535 {
            return Err(GpuError::Unsupported(format!(
                "a [{m}, {n}] result needs more than 65535 tiles along one side"
            )));
        }
        let stamp = self.stamp();
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("dense"),
                timestamp_writes: stamp.as_ref().map(|s| s.writes()),
            });
            pass.set_pipeline(&self.dense.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
        let (raw, time) = self.finish(encoder, stamp, Some((&c, 0, bytes)), started)?;
        Ok((bytemuck::pod_collect_to_vec::<u8, f32>(&raw), time))
    }

    /// `A · B` for A `[m, k]` and B `[k, n]`, row-major.
    pub fn matmul(
        &self,
        a: &[f32],
        m: usize,
        k: usize,
        b: &[f32],
        n: usize,
    ) -> Result<(Vec<f32>, GpuTime), GpuError> {
        if b.len() != k * n {
            return Err(GpuError::Unsupported(format!(
                "B has {} values for [{k}, {n}]",
                b.len()
            )));
        }
        // The kernel reads B's rows as columns: transpose once on the host.
        let mut bt = vec![0.0f32; n * k];
        for r in 0..k {
            for col in 0..n {
                bt[col * k + r] = b[r * n + col];
            }
        }
        self.dense(a, m, k, &bt, n, None, Activation::Identity)
    }

    /// MLP inference on a batch of input rows (`[batch, inputs]`).
    pub fn mlp(
        &self,
        spec: &NnSpec,
        input: &[f32],
        batch: usize,
    ) -> Result<(Vec<f32>, GpuTime), GpuError> {
        let mut x = input.to_vec();
        let mut width = input.len().checked_div(batch).unwrap_or(0);
        let mut total = zero_time();
        for (l, layer) in spec.layers.iter().enumerate() {
            let w = materialise(&layer.weights);
            let shape = w.shape().to_vec();
            let [out, inp] = shape[..] else {
                return Err(GpuError::Unsupported(format!(
                    "layer {l} weights are not a matrix"
                )));
            };
            if inp != width {
                return Err(GpuError::Unsupported(format!(
                    "layer {l} takes {inp} inputs but receives {width}"
                )));
            }
            let w: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            let bias: Option<Vec<f32>> = layer
                .bias
                .as_ref()
                .map(|b| b.iter().map(|&v| v as f32).collect());
            let (y, time) =
                self.dense(&x, batch, inp, &w, out, bias.as_deref(), layer.activation)?;
            total.wall_seconds += time.wall_seconds;
            total.busy_seconds += time.busy_seconds;
            x = y;
            width = out;
        }
        Ok((x, total))
    }
}
