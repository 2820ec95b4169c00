// sha256d nonce scan for 80-byte Bitcoin block headers.
//
// The host precomputes everything that does not depend on the nonce (see
// `ScanParams` in src/sha256/mod.rs): the midstate of the first 64 bytes, the
// working variables after rounds 0..2 of the second chunk, and the nonce-free
// schedule words W16, W17. Job data arrive in the `params` uniform buffer,
// never as shader source text. The second hash stops after round 60, where
// the hash's top 32 bits are known; the host re-checks every candidate.
//
// Every array index below is a loop counter masked to the array's length, a
// constant, or checked against arrayLength, which is why the module may be created without runtime bounds
// checks.

struct Params {
    midstate: array<vec4<u32>, 2>,
    state3: array<vec4<u32>, 2>,
    // W0, W1, W2 of the second chunk and the top 32 bits of the target.
    tail0: u32, tail1: u32, tail2: u32, target_hi: u32,
    kw16: u32, kw17: u32, w16: u32, w17: u32,
    // First nonce of this dispatch and how many nonces it covers.
    nonce_base: u32, nonce_count: u32, pad0: u32, pad1: u32,
}

struct Results {
    // How many candidates were found; may exceed the slot count, which the
    // host treats as an overflow and rescans.
    count: atomic<u32>,
    nonces: array<u32>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> results: Results;

override WORKGROUP_SIZE: u32 = 64u;
override NONCES_PER_INVOCATION: u32 = 4u;

const K = array<u32, 64>(
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
);

const H0 = array<u32, 8>(
    0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au, 0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u,
);

// Rotate right: the shape drivers turn into a funnel shift.
fn rotr(x: u32, n: u32) -> u32 { return (x >> n) | (x << (32u - n)); }
fn bsig0(x: u32) -> u32 { return rotr(x, 2u) ^ rotr(x, 13u) ^ rotr(x, 22u); }
fn bsig1(x: u32) -> u32 { return rotr(x, 6u) ^ rotr(x, 11u) ^ rotr(x, 25u); }
fn ssig0(x: u32) -> u32 { return rotr(x, 7u) ^ rotr(x, 18u) ^ (x >> 3u); }
fn ssig1(x: u32) -> u32 { return rotr(x, 17u) ^ rotr(x, 19u) ^ (x >> 10u); }
fn ch(e: u32, f: u32, g: u32) -> u32 { return g ^ (e & (f ^ g)); }
fn maj(a: u32, b: u32, c: u32) -> u32 { return (a & b) | (c & (a | b)); }
fn bswap(x: u32) -> u32 {
    return (x << 24u) | ((x & 0xff00u) << 8u) | ((x >> 8u) & 0xff00u) | (x >> 24u);
}

struct State { a: u32, b: u32, c: u32, d: u32, e: u32, f: u32, g: u32, h: u32 }

// One round with kw = K[i] + W[i].
fn round(s: State, kw: u32) -> State {
    let t1 = s.h + bsig1(s.e) + ch(s.e, s.f, s.g) + kw;
    let t2 = bsig0(s.a) + maj(s.a, s.b, s.c);
    return State(t1 + t2, s.a, s.b, s.c, s.d + t1, s.e, s.f, s.g);
}

// Top 32 bits (as a little-endian 256-bit number) of sha256d(header with nonce n).
fn hash_top(n: u32) -> u32 {
    // ---- first hash: second chunk from after round 2 ----
    // Ring of the last 16 schedule words: w[i & 15] holds W[i].
    var w: array<u32, 16>;
    w[0] = params.w16; w[1] = params.w17; w[2] = params.tail2; w[3] = bswap(n);
    w[4] = 0x80000000u;
    for (var i = 5u; i < 15u; i++) { w[i] = 0u; }
    w[15] = 640u;
    var s = State(params.state3[0].x, params.state3[0].y, params.state3[0].z, params.state3[0].w,
                  params.state3[1].x, params.state3[1].y, params.state3[1].z, params.state3[1].w);
    for (var i = 3u; i < 16u; i++) { s = round(s, K[i] + w[i]); }
    s = round(s, params.kw16);
    s = round(s, params.kw17);
    // Slots 0 and 1 hold W16, W17; slots 2..15 hold W2..W15 (slot i = W[i]).
    for (var i = 18u; i < 64u; i++) {
        let v = ssig1(w[(i - 2u) & 15u]) + w[(i - 7u) & 15u] + ssig0(w[(i - 15u) & 15u]) + w[i & 15u];
        w[i & 15u] = v;
        s = round(s, K[i] + v);
    }
    let m0 = params.midstate[0];
    let m1 = params.midstate[1];
    // ---- second hash of the 32-byte first hash ----
    w[0] = s.a + m0.x; w[1] = s.b + m0.y; w[2] = s.c + m0.z; w[3] = s.d + m0.w;
    w[4] = s.e + m1.x; w[5] = s.f + m1.y; w[6] = s.g + m1.z; w[7] = s.h + m1.w;
    w[8] = 0x80000000u;
    for (var i = 9u; i < 15u; i++) { w[i] = 0u; }
    w[15] = 256u;
    var t = State(H0[0], H0[1], H0[2], H0[3], H0[4], H0[5], H0[6], H0[7]);
    for (var i = 0u; i < 16u; i++) { t = round(t, K[i] + w[i]); }
    for (var i = 16u; i < 60u; i++) {
        let v = ssig1(w[(i - 2u) & 15u]) + w[(i - 7u) & 15u] + ssig0(w[(i - 15u) & 15u]) + w[i & 15u];
        w[i & 15u] = v;
        t = round(t, K[i] + v);
    }
    // Round 60: only e matters; it becomes h after round 63.
    let w60 = ssig1(w[(60u - 2u) & 15u]) + w[(60u - 7u) & 15u] + ssig0(w[(60u - 15u) & 15u]) + w[60u & 15u];
    let e60 = t.d + t.h + bsig1(t.e) + ch(t.e, t.f, t.g) + K[60] + w60;
    return bswap(e60 + H0[7]);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn scan(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Flatten a 2-D grid, so one dispatch may hold more than 65,535 workgroups.
    let flat = (wg.y * nwg.x + wg.x) * WORKGROUP_SIZE + lid;
    for (var k = 0u; k < NONCES_PER_INVOCATION; k++) {
        let offset = flat * NONCES_PER_INVOCATION + k;
        if (offset >= params.nonce_count) { return; }
        let nonce = params.nonce_base + offset;
        if (hash_top(nonce) <= params.target_hi) {
            let slot = atomicAdd(&results.count, 1u);
            if (slot < arrayLength(&results.nonces)) {
                results.nonces[slot] = nonce;
            }
        }
    }
}
