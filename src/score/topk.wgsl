// Top-k helpers over the `scores` buffer that maxsim.wgsl fills (one f32 per document slot,
// deleted = -Infinity), so that only a small candidate set has to be read back:
// - block_max: one workgroup per block of `block` slots writes that block's largest score;
// - compact: every slot scoring >= `threshold` is appended to `out` as (slot, score bits).
// Each block maximum is a real slot's score, so with T the k-th largest block maximum at least k
// slots score >= T, and every slot tying the k-th best score is among the candidates.

// Threads per workgroup.
override WG: u32 = 64u;

struct Params {
  // Document slots scored.
  doc_count: u32,
  // Slots per block (block_max).
  block: u32,
  // Slots scoring >= threshold are candidates (compact).
  threshold: f32,
  // Candidate entries `out` holds; the counter keeps counting past it (overflow).
  capacity: u32,
  // Workgroups per row of the dispatch grid, for block_max and compact.
  block_grid_x: u32,
  compact_grid_x: u32,
}

@group(0) @binding(0) var<storage, read> scores: array<f32>;
@group(0) @binding(1) var<storage, read_write> block_max: array<f32>;
// out[0]: candidates found; out[1]: unused (8-byte header); out[2 + 2i], out[3 + 2i]: slot and score bits of candidate i.
@group(0) @binding(2) var<storage, read_write> out: array<atomic<u32>>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> partial: array<f32, WG>;

// -Infinity (a constant expression may not be infinite, so it is built at run time).
fn neg_inf() -> f32 {
  var bits = 0xff800000u;
  return bitcast<f32>(bits);
}

@compute @workgroup_size(WG)
fn block_max_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let b = wid.y * params.block_grid_x + wid.x;
  let start = b * params.block;
  // Uniform per workgroup, so the barriers below are reached by all or none of its threads.
  if (start >= params.doc_count) {
    return;
  }
  let end = min(start + params.block, params.doc_count);
  var m = neg_inf();
  for (var i = start + t; i < end; i += WG) {
    m = max(m, scores[i]);
  }
  partial[t] = m;
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    workgroupBarrier();
    if (t < stride) {
      partial[t] = max(partial[t], partial[t + stride]);
    }
  }
  if (t == 0u) {
    block_max[b] = partial[0];
  }
}

@compute @workgroup_size(WG)
fn compact_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let slot = (wid.y * params.compact_grid_x + wid.x) * WG + t;
  if (slot >= params.doc_count) {
    return;
  }
  let s = scores[slot];
  if (s >= params.threshold) {
    let i = atomicAdd(&out[0], 1u);
    if (i < params.capacity) {
      atomicStore(&out[2u + 2u * i], slot);
      atomicStore(&out[3u + 2u * i], bitcast<u32>(s));
    }
  }
}
