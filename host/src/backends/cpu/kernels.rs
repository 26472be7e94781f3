//! The CPU kernels of deterministic nodes on `ndarray`: tensor ops, MLP
//! inference and the argmax of control decisions. The GPU falls back on them
//! for constants and to name shape errors.

use ndarray::{ArrayD, Axis, Ix1, Ix2, IxDyn};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, StandardNormal, Uniform};

use crate::model::graph::{Activation, Distribution, NnSpec, TensorOp, TensorSpec, TensorValue};

/// Errors executing a deterministic node. Fatal for the node (and so for the
/// job); they name the node's offending input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// Input shapes do not fit the operation.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// The input is not the kind of value the operation reads.
    #[error("wrong input: {0}")]
    WrongInput(String),
    /// The result contains NaN or infinity.
    #[error("non-finite result: {0}")]
    NonFinite(String),
}

/// Materialises a literal or generated tensor.
pub fn materialise(value: &TensorValue) -> ArrayD<f64> {
    let shape = IxDyn(&value.shape);
    let size: usize = value.shape.iter().product();
    let data: Vec<f64> = match (&value.data, &value.generator) {
        (Some(d), _) => d.clone(),
        (None, Some(g)) => {
            let mut rng = ChaCha8Rng::seed_from_u64(g.seed);
            let uniform = Uniform::new(-1.0, 1.0).expect("a valid range");
            (0..size)
                .map(|_| {
                    let x: f64 = match g.dist {
                        Distribution::Normal => StandardNormal.sample(&mut rng),
                        Distribution::Uniform => uniform.sample(&mut rng),
                    };
                    g.scale * x
                })
                .collect()
        }
        (None, None) => vec![0.0; size],
    };
    ArrayD::from_shape_vec(shape, data).expect("validated: data length matches shape")
}

fn as_matrix(x: &ArrayD<f64>, what: &str) -> Result<ndarray::Array2<f64>, KernelError> {
    x.clone().into_dimensionality::<Ix2>().map_err(|_| {
        KernelError::Shape(format!(
            "{what} must be a matrix, got shape {:?}",
            x.shape()
        ))
    })
}

fn check_finite(x: ArrayD<f64>, op: &str) -> Result<ArrayD<f64>, KernelError> {
    if x.iter().all(|v| v.is_finite()) {
        Ok(x)
    } else {
        Err(KernelError::NonFinite(format!(
            "{op} produced NaN or infinity"
        )))
    }
}

/// Runs a tensor op on its inputs.
pub fn tensor(spec: &TensorSpec, inputs: &[&ArrayD<f64>]) -> Result<ArrayD<f64>, KernelError> {
    let op = spec.op;
    let out = match op {
        TensorOp::Const => materialise(spec.value.as_ref().expect("validated: const has a value")),
        TensorOp::Matmul => {
            let a = as_matrix(inputs[0], "the left operand")?;
            let b = inputs[1];
            match b.ndim() {
                1 => {
                    let v = b.clone().into_dimensionality::<Ix1>().expect("ndim is 1");
                    if a.ncols() != v.len() {
                        return Err(KernelError::Shape(format!(
                            "matmul of {:?} by a vector of {}",
                            a.shape(),
                            v.len()
                        )));
                    }
                    a.dot(&v).into_dyn()
                }
                _ => {
                    let b = as_matrix(b, "the right operand")?;
                    if a.ncols() != b.nrows() {
                        return Err(KernelError::Shape(format!(
                            "matmul of {:?} by {:?}",
                            a.shape(),
                            b.shape()
                        )));
                    }
                    a.dot(&b).into_dyn()
                }
            }
        }
        TensorOp::Add | TensorOp::Mul => {
            let (a, b) = (inputs[0], inputs[1]);
            let combine = |x: f64, y: f64| if op == TensorOp::Add { x + y } else { x * y };
            if a.shape() == b.shape() {
                ndarray::Zip::from(a)
                    .and(b)
                    .map_collect(|&x, &y| combine(x, y))
            } else if b.len() == 1 {
                let y = b.iter().next().copied().unwrap_or(0.0);
                a.mapv(|x| combine(x, y))
            } else if a.len() == 1 {
                let x = a.iter().next().copied().unwrap_or(0.0);
                b.mapv(|y| combine(x, y))
            } else {
                return Err(KernelError::Shape(format!(
                    "element-wise {op:?} of shapes {:?} and {:?}",
                    a.shape(),
                    b.shape()
                )));
            }
        }
        TensorOp::Relu => inputs[0].mapv(|x| x.max(0.0)),
        TensorOp::Tanh => inputs[0].mapv(f64::tanh),
        TensorOp::Sigmoid => inputs[0].mapv(sigmoid),
        TensorOp::Sum | TensorOp::Mean | TensorOp::Max => reduce(op, spec.axis, inputs[0])?,
    };
    check_finite(out, &format!("{op:?}"))
}

fn reduce(op: TensorOp, axis: Option<usize>, x: &ArrayD<f64>) -> Result<ArrayD<f64>, KernelError> {
    if x.is_empty() {
        return Err(KernelError::Shape(format!("{op:?} of an empty tensor")));
    }
    let all = |x: ndarray::ArrayViewD<'_, f64>| -> f64 {
        match op {
            TensorOp::Sum => x.sum(),
            TensorOp::Mean => x.sum() / x.len() as f64,
            _ => x.fold(f64::NEG_INFINITY, |a, &b| a.max(b)),
        }
    };
    match axis {
        None => Ok(ArrayD::from_elem(IxDyn(&[]), all(x.view()))),
        Some(a) if a < x.ndim() => Ok(x.map_axis(Axis(a), |lane| all(lane.into_dyn()))),
        Some(a) => Err(KernelError::Shape(format!(
            "axis {a} out of range for shape {:?}",
            x.shape()
        ))),
    }
}

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// MLP inference on one input vector.
pub fn mlp(spec: &NnSpec, input: &ArrayD<f64>) -> Result<ArrayD<f64>, KernelError> {
    let mut x = input
        .clone()
        .into_shape_with_order(IxDyn(&[input.len()]))
        .expect("a tensor reshapes to its length")
        .into_dimensionality::<Ix1>()
        .expect("ndim is 1");
    for (l, layer) in spec.layers.iter().enumerate() {
        let w = as_matrix(&materialise(&layer.weights), "layer weights")?;
        if w.ncols() != x.len() {
            return Err(KernelError::Shape(format!(
                "layer {l} takes {} inputs but receives {}",
                w.ncols(),
                x.len()
            )));
        }
        let mut y = w.dot(&x);
        if let Some(b) = &layer.bias {
            y += &ndarray::ArrayView1::from(b.as_slice());
        }
        let act: fn(f64) -> f64 = match layer.activation {
            Activation::Identity => |v| v,
            Activation::Relu => |v| v.max(0.0),
            Activation::Tanh => f64::tanh,
            Activation::Sigmoid => sigmoid,
        };
        x = y.mapv(act);
    }
    check_finite(x.into_dyn(), "MLP")
}

/// Index of the largest element (the first on ties).
pub fn argmax(x: &[f64]) -> Result<usize, KernelError> {
    x.iter()
        .enumerate()
        .fold(None, |best: Option<(usize, f64)>, (i, &v)| match best {
            Some((_, b)) if b >= v => best,
            _ => Some((i, v)),
        })
        .map(|(i, _)| i)
        .ok_or_else(|| KernelError::WrongInput("argmax of an empty vector".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::graph::Layer;

    fn lit(shape: &[usize], data: &[f64]) -> TensorValue {
        TensorValue {
            shape: shape.to_vec(),
            data: Some(data.to_vec()),
            generator: None,
        }
    }

    #[test]
    fn matmul_matches_hand_computation() {
        let a = materialise(&lit(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        let b = materialise(&lit(&[3], &[1.0, 0.0, -1.0]));
        let spec = TensorSpec {
            op: TensorOp::Matmul,
            value: None,
            axis: None,
        };
        let y = tensor(&spec, &[&a, &b]).unwrap();
        assert_eq!(y.as_slice().unwrap(), &[-2.0, -2.0]);
        let bad = materialise(&lit(&[2], &[1.0, 2.0]));
        assert!(matches!(
            tensor(&spec, &[&a, &bad]),
            Err(KernelError::Shape(_))
        ));
    }

    #[test]
    fn reductions_and_elementwise() {
        let a = materialise(&lit(&[2, 2], &[1.0, -2.0, 3.0, 4.0]));
        let sum = TensorSpec {
            op: TensorOp::Sum,
            value: None,
            axis: Some(0),
        };
        assert_eq!(
            tensor(&sum, &[&a]).unwrap().as_slice().unwrap(),
            &[4.0, 2.0]
        );
        let max = TensorSpec {
            op: TensorOp::Max,
            value: None,
            axis: None,
        };
        assert_eq!(tensor(&max, &[&a]).unwrap().iter().next(), Some(&4.0));
        let relu = TensorSpec {
            op: TensorOp::Relu,
            value: None,
            axis: None,
        };
        assert_eq!(
            tensor(&relu, &[&a]).unwrap().as_slice().unwrap(),
            &[1.0, 0.0, 3.0, 4.0]
        );
    }

    #[test]
    fn mlp_two_layers() {
        let spec = NnSpec {
            layers: vec![
                Layer {
                    weights: lit(&[2, 2], &[1.0, 0.0, 0.0, -1.0]),
                    bias: Some(vec![0.0, 0.0]),
                    activation: Activation::Relu,
                },
                Layer {
                    weights: lit(&[1, 2], &[2.0, 3.0]),
                    bias: Some(vec![1.0]),
                    activation: Activation::Identity,
                },
            ],
        };
        let x = materialise(&lit(&[2], &[1.5, 2.0]));
        // relu([1.5, -2.0]) = [1.5, 0]; 2*1.5 + 0 + 1 = 4
        assert_eq!(mlp(&spec, &x).unwrap().as_slice().unwrap(), &[4.0]);
    }

    #[test]
    fn generators_are_seeded() {
        let g = |seed| TensorValue {
            shape: vec![4],
            data: None,
            generator: Some(crate::model::graph::Generator {
                seed,
                dist: Distribution::Normal,
                scale: 1.0,
            }),
        };
        assert_eq!(materialise(&g(1)), materialise(&g(1)));
        assert_ne!(materialise(&g(1)), materialise(&g(2)));
    }
}
