// Top-k on the GPU over the `scores` buffer that maxsim.wgsl fills for the whole index (one f32 per
// document slot of every shard, deleted = -Infinity), so that one small candidate list is all that
// comes back to the CPU. Three passes, recorded into one command buffer:
// - block_max: one workgroup per block of `block` slots writes that block's largest score;
// - select: one workgroup finds T, the k-th largest block maximum, and resets the candidate count;
// - compact: every live slot scoring >= T is appended to `out` as (slot, score bits).
// Each block maximum is a real slot's score, so at least k slots score >= T and every slot tying
// the k-th best score is a candidate. When fewer than k blocks hold a live slot, T is -Infinity
// and every live slot is a candidate (deleted slots, at -Infinity, never are).

// Threads per workgroup.
override WG: u32 = 64u;

struct Params {
  // Document slots scored.
  doc_count: u32,
  // Slots per block (block_max).
  block: u32,
  // Blocks, and the rank of the block maximum that becomes T (select).
  blocks: u32,
  k: u32,
  // Candidate entries `out` holds; the counter keeps counting past it (overflow).
  capacity: u32,
  // Workgroups per row of the dispatch grid, for block_max and compact.
  block_grid_x: u32,
  compact_grid_x: u32,
}

@group(0) @binding(0) var<storage, read> scores: array<f32>;
@group(0) @binding(1) var<storage, read_write> block_max: array<f32>;
// out[0]: candidates found; out[1]: the bits of T; out[2 + 2i], out[3 + 2i]: slot and score bits of candidate i.
@group(0) @binding(2) var<storage, read_write> out: array<atomic<u32>>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> partial: array<f32, WG>;
var<workgroup> counted: atomic<u32>;

// -Infinity (a constant expression may not be infinite, so it is built at run time).
fn neg_inf() -> f32 {
  var bits = 0xff800000u;
  return bitcast<f32>(bits);
}

// A u32 that orders like the float it encodes (for every non-NaN float: larger float, larger key).
fn order_key(s: f32) -> u32 {
  let b = bitcast<u32>(s);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// The float whose order_key is `key`.
fn from_key(key: u32) -> f32 {
  return bitcast<f32>(select(~key, key & 0x7fffffffu, (key & 0x80000000u) != 0u));
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

// One workgroup. T is the largest key v with at least k block maxima >= v, found one bit at a time
// from the top (a radix select): the k-th largest block maximum, exactly. Needs blocks >= k.
@compute @workgroup_size(WG)
fn select_main(@builtin(local_invocation_index) t: u32) {
  var prefix = 0u;
  for (var bit = 0u; bit < 32u; bit++) {
    let candidate = prefix | (0x80000000u >> bit);
    workgroupBarrier();
    if (t == 0u) {
      atomicStore(&counted, 0u);
    }
    workgroupBarrier();
    var n = 0u;
    for (var i = t; i < params.blocks; i += WG) {
      n += select(0u, 1u, order_key(block_max[i]) >= candidate);
    }
    atomicAdd(&counted, n);
    workgroupBarrier();
    if (atomicLoad(&counted) >= params.k) {
      prefix = candidate;
    }
  }
  if (t == 0u) {
    atomicStore(&out[0], 0u);
    atomicStore(&out[1], bitcast<u32>(from_key(prefix)));
  }
}

@compute @workgroup_size(WG)
fn compact_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let slot = (wid.y * params.compact_grid_x + wid.x) * WG + t;
  if (slot >= params.doc_count) {
    return;
  }
  let s = scores[slot];
  let threshold = bitcast<f32>(atomicLoad(&out[1]));
  if (s >= threshold && s > neg_inf()) {
    let i = atomicAdd(&out[0], 1u);
    if (i < params.capacity) {
      atomicStore(&out[2u + 2u * i], slot);
      atomicStore(&out[3u + 2u * i], bitcast<u32>(s));
    }
  }
}
