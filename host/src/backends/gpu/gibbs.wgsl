// Chromatic Gibbs sampling of a pairwise discrete model, many chains at
// once. The "variables" here are the host's units: a spin, a categorical
// variable, or a constrained block whose states are its valid
// configurations. One invocation updates one unit of one chain; units of one
// colour share no table, so a colour is updated in parallel. Randomness:
// Philox4x32-10 keyed by the seed, counter (unit, sweep, chain), so draws do
// not depend on scheduling. `record` copies every chain's state into slot
// `sample` of the draws window.

struct Params {
    n_vars: u32,
    chains: u32,
    color_start: u32,
    color_len: u32,
    sweep: u32,
    seed_lo: u32,
    seed_hi: u32,
    sample: u32,
    samples: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// Free variables, grouped by colour.
@group(0) @binding(1) var<storage, read> order: array<u32>;
// Per variable: states, unary offset, adjacency start, adjacency end.
@group(0) @binding(2) var<storage, read> var_info: array<vec4<u32>>;
// Per adjacency entry: neighbour, offset of the table [own state][neighbour state].
@group(0) @binding(3) var<storage, read> adj: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> tables: array<f32>;
@group(0) @binding(5) var<storage, read_write> state: array<u32>;
@group(0) @binding(6) var<storage, read_write> draws: array<u32>;

const MAX_STATES: u32 = 64u;

fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let lo_lo = a_lo * b_lo;
    let hi_lo = a_hi * b_lo;
    let lo_hi = a_lo * b_hi;
    let hi_hi = a_hi * b_hi;
    let cross = (lo_lo >> 16u) + (hi_lo & 0xffffu) + lo_hi;
    let hi = hi_hi + (hi_lo >> 16u) + (cross >> 16u);
    let lo = (cross << 16u) | (lo_lo & 0xffffu);
    return vec2<u32>(hi, lo);
}

fn philox(counter: vec4<u32>, key0: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key0;
    for (var i = 0u; i < 10u; i = i + 1u) {
        let p0 = mulhilo(0xD2511F53u, c.x);
        let p1 = mulhilo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

@compute @workgroup_size(64)
fn sweep_color(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    // Past 65,535 workgroups the dispatch is a 2-D grid (see `grid`).
    let idx = gid.x + gid.y * groups.x * 64u;
    if (idx >= params.color_len * params.chains) {
        return;
    }
    let chain = idx / params.color_len;
    let v = order[params.color_start + idx % params.color_len];
    let info = var_info[v];
    let k_states = info.x;
    let base = chain * params.n_vars;
    var logits: array<f32, 64>;
    var top = -3.0e38;
    for (var k = 0u; k < k_states; k = k + 1u) {
        var l = tables[info.y + k];
        for (var e = info.z; e < info.w; e = e + 1u) {
            let a = adj[e];
            let kn = var_info[a.x].x;
            l = l + tables[a.y + k * kn + state[base + a.x]];
        }
        logits[k] = l;
        top = max(top, l);
    }
    var total = 0.0;
    for (var k = 0u; k < k_states; k = k + 1u) {
        let w = exp(logits[k] - top);
        logits[k] = w;
        total = total + w;
    }
    let r = philox(vec4<u32>(v, params.sweep, chain, 0u), vec2<u32>(params.seed_lo, params.seed_hi));
    let u = f32(r.x >> 8u) * (1.0 / 16777216.0) * total;
    var pick = k_states - 1u;
    var acc = 0.0;
    for (var k = 0u; k < k_states; k = k + 1u) {
        acc = acc + logits[k];
        if (u < acc) {
            pick = k;
            break;
        }
    }
    state[base + v] = pick;
}

@compute @workgroup_size(64)
fn record(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = gid.x + gid.y * groups.x * 64u;
    if (idx >= params.n_vars * params.chains) {
        return;
    }
    // Sample-major, so that each slice's new samples are one contiguous
    // range to read back.
    draws[params.sample * params.n_vars * params.chains + idx] = state[idx];
}
