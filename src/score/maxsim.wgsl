// Exact MaxSim of one query against every document of one resident page (a set of buffers that
// holds documents of any number of shards, each described by one entry).
// One workgroup per document. The query rows of this pass sit in workgroup memory; document rows
// are decoded from their stored precision a tile at a time into workgroup memory (each stored
// value is decoded once), then every thread takes one query row and a share of the tile's rows.
//
// score(d) = sum over query rows i of max over rows j of d of <q_i, d_j>;
// a document without rows scores 0, a deleted one (live[d] == 0) -Infinity.
// Queries longer than Q_ROWS run in several passes; pass > 0 adds to the score of pass 0.

// Vector dimension (floats per row).
override DIM: u32 = 128u;
// Most query rows per pass (bounded by workgroup memory: Q_ROWS * DIM * 4 bytes).
override Q_ROWS: u32 = 32u;
// Threads per workgroup.
override WG: u32 = 64u;
// Document rows decoded into workgroup memory per step.
override TILE: u32 = 8u;
// Stored precision: 0 fp32, 1 fp16 (two halves per u32, low half first), 2 int8 (four per u32, times scales[row]).
override PRECISION: u32 = 0u;

struct Params {
  // Entries (documents) in this page.
  doc_count: u32,
  // Index of this page's first entry in `scores`.
  doc_base: u32,
  // Query rows in this pass (<= Q_ROWS) and the first of them.
  q_count: u32,
  q_start: u32,
  // 1 on passes after the first: add to the score instead of writing it.
  accumulate: u32,
  // Documents per row of the dispatch grid (dispatch x size).
  grid_x: u32,
}

// Where document d lies in the page: its first stored element in `rows`, its first row in
// `scales` (int8), its row count, and 1 while it is live (0: deleted, or not a document at all).
struct Entry {
  first_elem: u32,
  first_row: u32,
  rows: u32,
  live: u32,
}

@group(0) @binding(0) var<storage, read> query: array<f32>;
@group(0) @binding(1) var<storage, read> rows: array<u32>;
@group(0) @binding(2) var<storage, read> scales: array<f32>;
@group(0) @binding(3) var<storage, read> entries: array<Entry>;
@group(0) @binding(4) var<storage, read_write> scores: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

var<workgroup> q_tile: array<f32, Q_ROWS * DIM>;
var<workgroup> d_tile: array<f32, TILE * DIM>;
var<workgroup> partial: array<f32, WG>;

// -Infinity (a constant expression may not be infinite, so it is built at run time).
fn neg_inf() -> f32 {
  var bits = 0xff800000u;
  return bitcast<f32>(bits);
}

// Stored element i of the page (counted in elements of the stored precision) as f32, with the
// int8 scale of its row, per ../store/precision.ts.
fn load_elem(i: u32, row: u32) -> f32 {
  if (PRECISION == 0u) {
    return bitcast<f32>(rows[i]);
  }
  if (PRECISION == 1u) {
    let pair = unpack2x16float(rows[i >> 1u]);
    return select(pair.x, pair.y, (i & 1u) == 1u);
  }
  let q = extractBits(bitcast<i32>(rows[i >> 2u]), (i & 3u) * 8u, 8u);
  return f32(q) * scales[row];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let d = wid.y * params.grid_x + wid.x;
  // Uniform per workgroup, so every barrier below is reached by all or none of its threads.
  if (d >= params.doc_count) {
    return;
  }
  let entry = entries[d];
  let count = entry.rows;
  let out = params.doc_base + d;
  if (entry.live == 0u || count == 0u) {
    if (t == 0u) {
      scores[out] = select(select(0.0, scores[out], params.accumulate == 1u), neg_inf(), entry.live == 0u);
    }
    return;
  }

  for (var i = t; i < params.q_count * DIM; i += WG) {
    q_tile[i] = query[params.q_start * DIM + i];
  }

  // Thread t handles query row t % Q_ROWS for tile rows part, part + parts, ...
  let parts = WG / Q_ROWS;
  let qi = t % Q_ROWS;
  let part = t / Q_ROWS;
  let working = qi < params.q_count && part < parts;
  var best = neg_inf();
  for (var r0 = 0u; r0 < count; r0 += TILE) {
    let n = min(TILE, count - r0);
    workgroupBarrier();
    for (var i = t; i < n * DIM; i += WG) {
      let r = r0 + i / DIM;
      d_tile[i] = load_elem(entry.first_elem + r * DIM + i % DIM, entry.first_row + r);
    }
    workgroupBarrier();
    if (working) {
      for (var r = part; r < n; r += parts) {
        var s = 0.0;
        for (var k = 0u; k < DIM; k++) {
          s = fma(q_tile[qi * DIM + k], d_tile[r * DIM + k], s);
        }
        best = max(best, s);
      }
    }
  }

  partial[t] = best;
  workgroupBarrier();
  if (t == 0u) {
    var total = 0.0;
    for (var i = 0u; i < params.q_count; i++) {
      var m = partial[i];
      for (var p = 1u; p < parts; p++) {
        m = max(m, partial[p * Q_ROWS + i]);
      }
      total += m;
    }
    scores[out] = select(total, scores[out] + total, params.accumulate == 1u);
  }
}
