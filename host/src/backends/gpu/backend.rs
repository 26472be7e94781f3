//! The engine's GPU backend: tensor and NN nodes on the dense and
//! element-wise kernels, sampling nodes on [`GpuSampling`], and the GPU's
//! busy time turned into energy per node for the learning loop.

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use super::{AdapterInfo, Binary, GpuDevice, GpuError, GpuSampling, GpuTime, Reduce, Unary};
use crate::backends::cpu::kernels::{self, KernelError};
use crate::backends::value::{self, NodeCall, NodeResult, kernel_failure, tensor_output};
use crate::backends::{Backend, BackendError, SamplingTask};
use crate::device::Target;
use crate::model::EProgram;
use crate::model::graph::{Payload, TensorOp, TensorSpec};
use crate::sampler::SampleError;

/// The GPU as the engine sees it: the `gpu` and `gpu-sim` targets.
#[derive(Debug)]
pub struct GpuBackend {
    device: Result<Arc<GpuDevice>, GpuError>,
    /// Watts while busy (the hardware file's `gpu.active_w`).
    active_w: f64,
    last_energy_j: Option<f64>,
}

impl GpuBackend {
    /// The process's shared device for the adapter `selector` names (the
    /// hardware file's `gpu.adapter`), acquired on first use. Without one
    /// every call answers [`BackendError::Unavailable`] and the engine
    /// falls back.
    /// Whether an adapter was found (without one every call answers
    /// `BackendUnavailable`).
    pub fn is_available(&self) -> bool {
        self.device.is_ok()
    }

    pub fn shared(selector: &str, active_w: f64) -> GpuBackend {
        GpuBackend::with_device(GpuDevice::shared_matching(selector), active_w)
    }

    /// A backend on `device`, or one that reports why there is none.
    pub fn with_device(device: Result<Arc<GpuDevice>, GpuError>, active_w: f64) -> GpuBackend {
        GpuBackend {
            device,
            active_w,
            last_energy_j: None,
        }
    }

    /// The adapter, when there is one.
    pub fn adapter(&self) -> Option<&AdapterInfo> {
        self.device.as_ref().ok().map(|d| &d.info)
    }

    fn gpu(&self) -> Result<&GpuDevice, BackendError> {
        self.device.as_deref().map_err(|e| backend_error(e.clone()))
    }
}

/// No device is `Unavailable`; anything else the GPU cannot do here is a
/// failure of this attempt, and the engine routes the node elsewhere.
pub(super) fn backend_error(e: GpuError) -> BackendError {
    match e {
        GpuError::Unavailable(_) => BackendError::Unavailable(e.to_string()),
        _ => BackendError::Failed(e.to_string()),
    }
}

fn to_f32(x: &ArrayD<f64>) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// A GPU result as the node's tensor, or the node's failure when it is not
/// finite (as on the CPU).
fn finish(shape: &[usize], values: Vec<f32>, op: &str) -> Result<ArrayD<f64>, KernelError> {
    let data: Vec<f64> = values.into_iter().map(f64::from).collect();
    if data.iter().any(|v| !v.is_finite()) {
        return Err(KernelError::NonFinite(format!(
            "{op} produced NaN or infinity"
        )));
    }
    Ok(ArrayD::from_shape_vec(IxDyn(shape), data).expect("the kernel writes every element"))
}

/// A node's result (or its kernel error) and what the GPU spent on it.
type Computed = (Result<ArrayD<f64>, KernelError>, GpuTime);

/// Runs a tensor op on the GPU. `Ok(None)`: the inputs do not fit the op,
/// and the CPU kernel (the one source of shape errors) says why.
fn tensor(
    gpu: &GpuDevice,
    spec: &TensorSpec,
    inputs: &[&ArrayD<f64>],
) -> Result<Option<Computed>, GpuError> {
    let op = spec.op;
    let name = format!("{op:?}");
    let (shape, (values, time)) = match op {
        TensorOp::Const => return Ok(None),
        TensorOp::Matmul => {
            let (a, b) = (inputs[0], inputs[1]);
            let [m, k] = a.shape()[..] else {
                return Ok(None);
            };
            match *b.shape() {
                [kb] if kb == k => (vec![m], gpu.matmul(&to_f32(a), m, k, &to_f32(b), 1)?),
                [kb, n] if kb == k => (vec![m, n], gpu.matmul(&to_f32(a), m, k, &to_f32(b), n)?),
                _ => return Ok(None),
            }
        }
        TensorOp::Add | TensorOp::Mul => {
            let (a, b) = (inputs[0], inputs[1]);
            let shape = if a.shape() == b.shape() || b.len() == 1 {
                a.shape().to_vec()
            } else if a.len() == 1 {
                b.shape().to_vec()
            } else {
                return Ok(None);
            };
            let binary = if op == TensorOp::Add {
                Binary::Add
            } else {
                Binary::Mul
            };
            (shape, gpu.binary(binary, &to_f32(a), &to_f32(b))?)
        }
        TensorOp::Relu | TensorOp::Tanh | TensorOp::Sigmoid => {
            let unary = match op {
                TensorOp::Relu => Unary::Relu,
                TensorOp::Tanh => Unary::Tanh,
                _ => Unary::Sigmoid,
            };
            let a = inputs[0];
            (a.shape().to_vec(), gpu.unary(unary, &to_f32(a))?)
        }
        TensorOp::Sum | TensorOp::Mean | TensorOp::Max => {
            let a = inputs[0];
            if a.is_empty() {
                return Ok(None);
            }
            let reduce = match op {
                TensorOp::Sum => Reduce::Sum,
                TensorOp::Mean => Reduce::Mean,
                _ => Reduce::Max,
            };
            let shape = a.shape();
            match spec.axis {
                None => (vec![], gpu.reduce(reduce, &to_f32(a), 1, a.len(), 1)?),
                Some(axis) if axis < shape.len() => {
                    let outer = shape[..axis].iter().product();
                    let inner = shape[axis + 1..].iter().product();
                    let mut out_shape = shape.to_vec();
                    out_shape.remove(axis);
                    let result = gpu.reduce(reduce, &to_f32(a), outer, shape[axis], inner)?;
                    (out_shape, result)
                }
                Some(_) => return Ok(None),
            }
        }
    };
    Ok(Some((finish(&shape, values, &name), time)))
}

impl Backend for GpuBackend {
    fn targets(&self) -> &[Target] {
        &[Target::Gpu, Target::GpuSim]
    }

    fn run_node(&mut self, call: NodeCall<'_>) -> Result<NodeResult, BackendError> {
        let NodeCall {
            graph,
            node,
            inputs,
        } = call;
        self.last_energy_j = None;
        let gpu = self.gpu()?;
        let spec = &graph.nodes[node];
        let inputs = match value::tensor_inputs(graph, node, &inputs) {
            Ok(inputs) => inputs,
            Err(failure) => return Ok(Err(failure)),
        };
        let computed = match &spec.payload {
            Payload::Tensor(tensor_spec) => {
                match tensor(gpu, tensor_spec, &inputs).map_err(backend_error)? {
                    Some(done) => done,
                    // Constants and misshapen inputs: the CPU kernel builds
                    // the constant or names the shape error.
                    None => {
                        return Ok(kernels::tensor(tensor_spec, &inputs)
                            .map(tensor_output)
                            .map_err(kernel_failure));
                    }
                }
            }
            Payload::Nn(nn) => {
                let x = inputs[0];
                match gpu.mlp(nn, &to_f32(x), 1) {
                    Ok((y, time)) => {
                        let width = y.len();
                        (finish(&[width], y, "MLP"), time)
                    }
                    // Layer shapes that do not chain: the CPU names the error.
                    Err(GpuError::Unsupported(_)) => {
                        return Ok(kernels::mlp(nn, x)
                            .map(tensor_output)
                            .map_err(kernel_failure));
                    }
                    Err(e) => return Err(backend_error(e)),
                }
            }
            _ => {
                return Err(BackendError::Unavailable(
                    "the GPU runs tensor, nn and sampling nodes only".into(),
                ));
            }
        };
        let (result, time) = computed;
        self.last_energy_j = Some(self.active_w * time.busy_seconds);
        Ok(result.map(tensor_output).map_err(kernel_failure))
    }

    fn take_energy_j(&mut self) -> Option<f64> {
        self.last_energy_j.take()
    }

    fn start_sampling(
        &mut self,
        program: &EProgram,
        seed: u64,
    ) -> Result<Result<Box<dyn SamplingTask>, SampleError>, BackendError> {
        if let Err(inf) = program.feasibility("$") {
            return Ok(Err(SampleError::Infeasible(inf)));
        }
        let gpu = self.device.clone().map_err(backend_error)?;
        let run = GpuSampling::new(gpu, program, seed).map_err(backend_error)?;
        Ok(Ok(Box::new(run.with_active_power(self.active_w))))
    }
}
