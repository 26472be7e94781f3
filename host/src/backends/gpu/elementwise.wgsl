// Element-wise maps and reductions over f32 tensors.
//
// `map`: out[i] = f(a[i], b[i]) for binary ops (an operand of length 1
// broadcasts), f(a[i]) for unary ones.
// `reduce`: the tensor viewed as [outer, len, inner]; one workgroup per
// output element (outer x inner of them) strides over `len` and combines
// its 256 partial results in workgroup memory.

// map: (n, a_len, b_len, op: 0 add, 1 mul, 2 relu, 3 tanh, 4 sigmoid)
// reduce: (outer, len, inner, op: 0 sum, 1 mean, 2 max)
struct Params {
    d0: u32,
    d1: u32,
    d2: u32,
    op: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;
// Below any finite f32: the identity of max.
const LOWEST: f32 = -3.4028235e38;

fn tanh_safe(x: f32) -> f32 {
    // tanh saturates long before exp overflows; clamping keeps drivers that
    // compute it through exp from returning NaN.
    return tanh(clamp(x, -15.0, 15.0));
}

@compute @workgroup_size(256)
fn map(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WG;
    let p = params;
    if (i >= p.d0) {
        return;
    }
    let x = a[select(i, 0u, p.d1 == 1u)];
    var v = 0.0;
    switch p.op {
        case 0u: { v = x + b[select(i, 0u, p.d2 == 1u)]; }
        case 1u: { v = x * b[select(i, 0u, p.d2 == 1u)]; }
        case 2u: { v = max(x, 0.0); }
        case 3u: { v = tanh_safe(x); }
        default: { v = 1.0 / (1.0 + exp(-x)); }
    }
    out[i] = v;
}

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn reduce(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let p = params;
    let outer = p.d0;
    let len = p.d1;
    let inner = max(p.d2, 1u);
    let o = wid.x + wid.y * groups.x;
    // `o` is the same for the whole workgroup, so the barriers below stay
    // in uniform control flow.
    let live = o < outer * inner;
    let base = (o / inner) * len * inner + o % inner;
    var acc = select(0.0, LOWEST, p.op == 2u);
    if (live) {
        for (var j = lid.x; j < len; j = j + WG) {
            let x = a[base + j * inner];
            if (p.op == 2u) {
                acc = max(acc, x);
            } else {
                acc = acc + x;
            }
        }
    }
    partial[lid.x] = acc;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid.x < stride) {
            let y = partial[lid.x + stride];
            if (p.op == 2u) {
                partial[lid.x] = max(partial[lid.x], y);
            } else {
                partial[lid.x] = partial[lid.x] + y;
            }
        }
        workgroupBarrier();
    }
    if (live && lid.x == 0u) {
        var v = partial[0];
        if (p.op == 1u) {
            v = v / f32(len);
        }
        out[o] = v;
    }
}
