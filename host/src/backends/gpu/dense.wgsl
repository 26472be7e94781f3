// Dense layer / matrix product: C[m][n] = act(sum_k A[m][k] * B[n][k] + bias[n]),
// A row-major [m, k], B row-major [n, k] (a layer's weights as stored), in
// 16x16 tiles staged through workgroup memory.

struct Dims {
    m: u32,
    n: u32,
    k: u32,
    // 0 identity, 1 relu, 2 tanh, 3 sigmoid
    act: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const T: u32 = 16u;
var<workgroup> ta: array<array<f32, 16>, 16>;
var<workgroup> tb: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn dense(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let row = wid.y * T + lid.y;
    let col = wid.x * T + lid.x;
    let b_row = wid.x * T + lid.x;
    var acc = 0.0;
    let tiles = (dims.k + T - 1u) / T;
    for (var t = 0u; t < tiles; t = t + 1u) {
        let ka = t * T + lid.x;
        var va = 0.0;
        if (row < dims.m && ka < dims.k) {
            va = a[row * dims.k + ka];
        }
        ta[lid.y][lid.x] = va;
        let kb = t * T + lid.y;
        var vb = 0.0;
        if (b_row < dims.n && kb < dims.k) {
            vb = b[b_row * dims.k + kb];
        }
        tb[lid.y][lid.x] = vb;
        workgroupBarrier();
        for (var i = 0u; i < T; i = i + 1u) {
            acc = acc + ta[lid.y][i] * tb[i][lid.x];
        }
        workgroupBarrier();
    }
    if (row < dims.m && col < dims.n) {
        var v = acc + bias[col];
        switch dims.act {
            case 1u: { v = max(v, 0.0); }
            case 2u: { v = tanh(clamp(v, -15.0, 15.0)); }
            case 3u: { v = 1.0 / (1.0 + exp(-v)); }
            default: {}
        }
        c[row * dims.n + col] = v;
    }
}
