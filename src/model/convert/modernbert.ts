/**
 * Builds the ONNX graph of a PyLate ModernBERT checkpoint: token embedding + LayerNorm, then per
 * layer pre-norm rotary self-attention (global layers see every token; sliding-window layers see
 * keys within local_attention / 2 positions and use their own rotary theta) and a GeGLU MLP, a
 * final LayerNorm, the Dense head(s), and L2 normalisation. Inputs `input_ids`, `attention_mask`
 * (int64 [batch, sequence]); output `output` (float [batch, sequence, dim]).
 *
 * Graph choices for onnxruntime's CPU/WASM kernels: one fused QKV MatMul split afterwards; the
 * softmax scale folded into the query weights; rotary applied in [batch, seq, heads, head_dim]
 * layout before one Transpose per tensor (keys straight to [b, h, d, s], so Q K^T needs none);
 * GELU written as the erf pattern onnxruntime fuses into one kernel; masks built once per call.
 */
import { ColbertError } from '../../errors.ts';
import { DataType, GraphBuilder, bytesOf, encodeModel } from './onnx-writer.ts';
import type { MatrixSource, WeightFormat } from './quantize.ts';

/** The ModernBERT hyper-parameters the graph needs, read from config.json. */
export interface ModernBertConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  normEps: number;
  normBias: boolean;
  attentionBias: boolean;
  mlpBias: boolean;
  /** 'full' layers attend globally, 'sliding' ones within the window. */
  layerTypes: ('full' | 'sliding')[];
  globalRopeTheta: number;
  localRopeTheta: number;
  /** Total window; each token sees keys at distance <= localAttention / 2 (floored). */
  localAttention: number;
  /** 'gelu' (erf) or 'gelu_tanh' (the tanh approximation). */
  activation: 'gelu' | 'gelu_tanh';
}

const ACTIVATIONS: Record<string, ModernBertConfig['activation']> = {
  gelu: 'gelu',
  gelu_python: 'gelu',
  gelu_new: 'gelu_tanh',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_fast: 'gelu_tanh',
};

function invalid(message: string, details?: Record<string, unknown>): ColbertError {
  return new ColbertError('MODEL_CONFIG_INVALID', `config.json: ${message}`, details);
}

/**
 * Reads config.json of a ModernBERT checkpoint, in both the original form (global_rope_theta,
 * local_rope_theta, global_attn_every_n_layers) and the newer one (layer_types, rope_parameters).
 * Defaults are ModernBERT-base's where a field is absent.
 */
export function parseModernBertConfig(json: Record<string, unknown>): ModernBertConfig {
  const int = (key: string, fallback?: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw invalid(`"${key}" must be a positive integer (got ${JSON.stringify(v)}).`, { key });
    return v;
  };
  const num = (v: unknown, key: string, fallback: number): number => {
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw invalid(`"${key}" must be a positive number.`, { key });
    return v;
  };
  const bool = (key: string): boolean => json[key] === true;
  const hiddenSize = int('hidden_size', 768);
  const numHeads = int('num_attention_heads', 12);
  const numLayers = int('num_hidden_layers', 22);
  if (hiddenSize % numHeads !== 0 || (hiddenSize / numHeads) % 2 !== 0) {
    throw invalid(`hidden_size ${hiddenSize} must split into ${numHeads} heads of even size.`);
  }
  const actName = typeof json['hidden_activation'] === 'string' ? json['hidden_activation'] : 'gelu';
  const activation = ACTIVATIONS[actName];
  if (!activation) throw invalid(`unsupported hidden_activation "${actName}" (supported: ${Object.keys(ACTIVATIONS).join(', ')}).`);
  let layerTypes: ModernBertConfig['layerTypes'];
  if (Array.isArray(json['layer_types'])) {
    layerTypes = json['layer_types'].map((t) => {
      if (t === 'full_attention') return 'full';
      if (t === 'sliding_attention') return 'sliding';
      throw invalid(`unknown layer type ${JSON.stringify(t)} in layer_types.`);
    });
    if (layerTypes.length !== numLayers) throw invalid(`layer_types has ${layerTypes.length} entries for ${numLayers} layers.`);
  } else {
    const every = int('global_attn_every_n_layers', 3);
    layerTypes = Array.from({ length: numLayers }, (_, i) => (i % every === 0 ? 'full' : 'sliding'));
  }
  const rope = (json['rope_parameters'] ?? {}) as Record<string, { rope_theta?: unknown } | undefined>;
  return {
    vocabSize: int('vocab_size', 50368),
    hiddenSize,
    intermediateSize: int('intermediate_size', 1152),
    numLayers,
    numHeads,
    normEps: num(json['norm_eps'] ?? json['layer_norm_eps'], 'norm_eps', 1e-5),
    normBias: bool('norm_bias'),
    attentionBias: bool('attention_bias'),
    mlpBias: bool('mlp_bias'),
    layerTypes,
    globalRopeTheta: num(json['global_rope_theta'] ?? rope['full_attention']?.rope_theta, 'global_rope_theta', 160000),
    localRopeTheta: num(json['local_rope_theta'] ?? rope['sliding_attention']?.rope_theta, 'local_rope_theta', 10000),
    localAttention: int('local_attention', 128),
    activation,
  };
}

/** A checkpoint tensor as float32, row-major in its stored shape. */
export interface FloatTensor {
  shape: number[];
  values(): Float32Array;
}

/** A Dense layer of the PyLate head: `y = act(W x + b)`, W [out, in]. */
export interface HeadLayer {
  weight: Float32Array;
  inFeatures: number;
  outFeatures: number;
  bias: Float32Array | null;
  activation: 'identity' | 'tanh';
}

/** What the builder reads: backbone tensors by their ModernBERT names (no `model.` prefix). */
export type TensorLookup = (name: string) => FloatTensor | undefined;

function matrix(lookup: TensorLookup, name: string, rows: number, cols: number, transform?: (v: Float32Array) => Float32Array): MatrixSource {
  const t = lookup(name);
  if (!t) throw new ColbertError('MODEL_CONFIG_INVALID', `model.safetensors has no tensor "${name}".`, { tensor: name });
  if (t.shape.length !== 2 || t.shape[0] !== rows || t.shape[1] !== cols) {
    throw new ColbertError('MODEL_CONFIG_INVALID', `Tensor "${name}" has shape [${t.shape.join(', ')}], expected [${rows}, ${cols}].`, { tensor: name, shape: t.shape });
  }
  return { rows, cols, values: transform ? () => transform(t.values()) : () => t.values() };
}

function vector(lookup: TensorLookup, name: string, length: number): Float32Array {
  const t = lookup(name);
  if (!t) throw new ColbertError('MODEL_CONFIG_INVALID', `model.safetensors has no tensor "${name}".`, { tensor: name });
  if (t.shape.length !== 1 || t.shape[0] !== length) {
    throw new ColbertError('MODEL_CONFIG_INVALID', `Tensor "${name}" has shape [${t.shape.join(', ')}], expected [${length}].`, { tensor: name, shape: t.shape });
  }
  return t.values().slice();
}

/** Large negative bias for masked attention scores (finite, so two of them never make -inf). */
const MASKED = -1e30;

/**
 * Builds the whole graph and returns its ONNX bytes. Weights are pulled from `lookup` as the
 * bytes are written (for fp32/fp16), so peak memory is the checkpoint plus the model bytes.
 */
export function buildModernBertOnnx(config: ModernBertConfig, lookup: TensorLookup, head: readonly HeadLayer[], format: WeightFormat): Uint8Array {
  const { hiddenSize: H, numHeads: nh, intermediateSize: I, normEps } = config;
  const hd = H / nh;
  const g = new GraphBuilder(`colbert_modernbert_${format.dtype}`);
  const ids = g.input('input_ids', DataType.INT64, ['batch_size', 'sequence_length']);
  const mask = g.input('attention_mask', DataType.INT64, ['batch_size', 'sequence_length']);
  const f32 = (name: string, dims: number[], values: Float32Array | number[]): string =>
    g.initializer(name, DataType.FLOAT, dims, bytesOf(values instanceof Float32Array ? values : Float32Array.from(values)));

  const layerNorm = (x: string, name: string): string => {
    const inputs = [x, f32(`${name}.weight`, [H], vector(lookup, `${name}.weight`, H))];
    if (config.normBias) inputs.push(f32(`${name}.bias`, [H], vector(lookup, `${name}.bias`, H)));
    return g.node('LayerNormalization', inputs, { axis: { i: -1 }, epsilon: { f: normEps } });
  };
  const bias = (name: string, on: boolean, length: number): Float32Array | undefined => (on ? vector(lookup, name, length) : undefined);

  // Sequence positions and masks, computed once per call.
  const seqLen = g.node('Gather', [g.node('Shape', [ids]), g.int64s('index_one', [1])], { axis: { i: 0 } });
  const seqF = g.node('Cast', [g.node('Squeeze', [seqLen, g.int64s('axis_zero', [0])])], { to: { i: DataType.FLOAT } });
  const positions = g.node('Range', [g.scalar('zero_f', 0), seqF, g.scalar('one_f', 1)]);
  const posCol = g.node('Unsqueeze', [positions, g.int64s('axes_1', [1])]);
  const posRow = g.node('Unsqueeze', [positions, g.int64s('axes_0', [0])]);
  const maskF = g.node('Cast', [mask], { to: { i: DataType.FLOAT } });
  const keyBias = g.node('Unsqueeze', [g.node('Mul', [g.node('Sub', [maskF, g.scalar('one_mask', 1)]), g.scalar('neg_big', -MASKED)]), g.int64s('axes_1_2', [1, 2])]);
  const distance = g.node('Abs', [g.node('Sub', [posCol, posRow])]);
  const outside = g.node('Greater', [distance, g.scalar('half_window', Math.floor(config.localAttention / 2))]);
  const bandBias = g.node('Where', [outside, g.scalar('masked', MASKED), g.scalar('zero_bias', 0)]);
  const slidingBias = g.node('Add', [keyBias, bandBias]);

  // Rotary tables [seq, 1, head_dim]: cos, and sin signed so that rotate_half(x) * sin is
  // swap_halves(x) * signed_sin (no negation per call).
  const rotary = (theta: number, tag: string): { cos: string; sin: string } => {
    const inv = new Float32Array(hd);
    for (let j = 0; j < hd / 2; j++) inv[j] = inv[j + hd / 2] = 1 / theta ** ((2 * j) / hd);
    const sign = Float32Array.from({ length: hd }, (_, j) => (j < hd / 2 ? -1 : 1));
    const freqs = g.node('Mul', [posCol, f32(`rope_${tag}_inv_freq`, [hd], inv)]);
    const axes = g.int64s(`rope_${tag}_axes`, [1]);
    return {
      cos: g.node('Unsqueeze', [g.node('Cos', [freqs]), axes]),
      sin: g.node('Unsqueeze', [g.node('Mul', [g.node('Sin', [freqs]), f32(`rope_${tag}_sign`, [hd], sign)]), axes]),
    };
  };
  const ropeGlobal = rotary(config.globalRopeTheta, 'global');
  const ropeLocal = config.layerTypes.includes('sliding') ? rotary(config.localRopeTheta, 'local') : ropeGlobal;
  const half = g.int64s('rope_half', [hd / 2]);
  const start = g.int64s('rope_start', [0]);
  const end = g.int64s('rope_end', [hd]);
  const lastAxis = g.int64s('axis_last', [3]);
  const applyRotary = (x: string, rope: { cos: string; sin: string }): string => {
    const x1 = g.node('Slice', [x, start, half, lastAxis]);
    const x2 = g.node('Slice', [x, half, end, lastAxis]);
    const swapped = g.node('Concat', [x2, x1], { axis: { i: -1 } });
    return g.node('Add', [g.node('Mul', [x, rope.cos]), g.node('Mul', [swapped, rope.sin])]);
  };

  const tok = matrix(lookup, 'embeddings.tok_embeddings.weight', config.vocabSize, H);
  let x = layerNorm(format.embedding(g, ids, 'embeddings.tok_embeddings.weight', tok), 'embeddings.norm');

  const qkvShape = g.int64s('qkv_shape', [0, 0, 3 * nh, hd]);
  const hiddenShape = g.int64s('hidden_shape', [0, 0, H]);
  const scale = 1 / Math.sqrt(hd);
  for (let i = 0; i < config.numLayers; i++) {
    const p = `layers.${i}`;
    const sliding = config.layerTypes[i] === 'sliding';
    const attnIn = i === 0 ? x : layerNorm(x, `${p}.attn_norm`);
    // Scaling the query rows (and bias) by 1/sqrt(head_dim) commutes with rotary (a rotation).
    const wqkv = matrix(lookup, `${p}.attn.Wqkv.weight`, 3 * H, H, (v) => {
      const out = v.slice();
      for (let k = 0; k < H * H; k++) out[k]! *= scale;
      return out;
    });
    const bqkv = bias(`${p}.attn.Wqkv.bias`, config.attentionBias, 3 * H)?.map((v, k) => (k < H ? v * scale : v));
    const qkv = g.node('Reshape', [format.linear(g, attnIn, `${p}.attn.Wqkv`, wqkv, bqkv), qkvShape]);
    const [q, k, v] = g.nodeN('Split', [qkv, g.int64s(`${p}.qkv_split`, [nh, nh, nh])], 3, { axis: { i: 2 } }) as [string, string, string];
    const rope = sliding ? ropeLocal : ropeGlobal;
    const qh = g.node('Transpose', [applyRotary(q, rope)], { perm: { ints: [0, 2, 1, 3] } });
    const kt = g.node('Transpose', [applyRotary(k, rope)], { perm: { ints: [0, 2, 3, 1] } });
    const vh = g.node('Transpose', [v], { perm: { ints: [0, 2, 1, 3] } });
    const scores = g.node('Add', [g.node('MatMul', [qh, kt]), sliding ? slidingBias : keyBias]);
    const context = g.node('MatMul', [g.node('Softmax', [scores], { axis: { i: -1 } }), vh]);
    const merged = g.node('Reshape', [g.node('Transpose', [context], { perm: { ints: [0, 2, 1, 3] } }), hiddenShape]);
    const attnOut = format.linear(g, merged, `${p}.attn.Wo`, matrix(lookup, `${p}.attn.Wo.weight`, H, H), bias(`${p}.attn.Wo.bias`, config.attentionBias, H));
    x = g.node('Add', [x, attnOut]);

    const mlpIn = layerNorm(x, `${p}.mlp_norm`);
    const wi = format.linear(g, mlpIn, `${p}.mlp.Wi`, matrix(lookup, `${p}.mlp.Wi.weight`, 2 * I, H), bias(`${p}.mlp.Wi.bias`, config.mlpBias, 2 * I));
    // GeGLU: the first half goes through GELU, the second half gates it.
    const [input, gate] = g.nodeN('Split', [wi, g.int64s(`${p}.wi_split`, [I, I])], 2, { axis: { i: -1 } }) as [string, string];
    const act = gelu(g, input, config.activation);
    const mlpOut = format.linear(g, g.node('Mul', [act, gate]), `${p}.mlp.Wo`, matrix(lookup, `${p}.mlp.Wo.weight`, H, I), bias(`${p}.mlp.Wo.bias`, config.mlpBias, H));
    x = g.node('Add', [x, mlpOut]);
  }
  x = layerNorm(x, 'final_norm');

  // The PyLate head in float32 whatever the dtype (it is small), then F.normalize (eps 1e-12).
  let width = H;
  head.forEach((layer, n) => {
    if (layer.inFeatures !== width) {
      throw new ColbertError('MODEL_CONFIG_INVALID', `Dense layer ${n} takes ${layer.inFeatures} features but receives ${width}.`);
    }
    const wt = new Float32Array(layer.inFeatures * layer.outFeatures);
    for (let o = 0; o < layer.outFeatures; o++) for (let k = 0; k < layer.inFeatures; k++) wt[k * layer.outFeatures + o] = layer.weight[o * layer.inFeatures + k]!;
    x = g.node('MatMul', [x, f32(`dense_${n}.linear.weight_t`, [layer.inFeatures, layer.outFeatures], wt)]);
    if (layer.bias) x = g.node('Add', [x, f32(`dense_${n}.linear.bias`, [layer.outFeatures], layer.bias)]);
    if (layer.activation === 'tanh') x = g.node('Tanh', [x]);
    width = layer.outFeatures;
  });
  const norm = g.node('Max', [g.node('ReduceL2', [x], { axes: { ints: [-1] }, keepdims: { i: 1 } }), g.scalar('norm_eps', 1e-12)]);
  g.node('Div', [x, norm], undefined, 'output');
  g.output('output', DataType.FLOAT, ['batch_size', 'sequence_length', width]);
  return encodeModel(g, format.opsets);
}

/** GELU in the exact (erf) or tanh form, as patterns onnxruntime fuses. */
function gelu(g: GraphBuilder, x: string, kind: ModernBertConfig['activation']): string {
  if (kind === 'gelu') {
    const erf = g.node('Erf', [g.node('Div', [x, g.scalar(`sqrt2_${x}`, Math.SQRT2)])]);
    return g.node('Mul', [g.node('Mul', [x, g.node('Add', [erf, g.scalar(`one_${x}`, 1)])]), g.scalar(`half_${x}`, 0.5)]);
  }
  const cube = g.node('Mul', [g.node('Mul', [x, x]), x]);
  const inner = g.node('Mul', [g.node('Add', [x, g.node('Mul', [cube, g.scalar(`c_${x}`, 0.044715)])]), g.scalar(`k_${x}`, Math.sqrt(2 / Math.PI))]);
  return g.node('Mul', [g.node('Mul', [x, g.node('Add', [g.node('Tanh', [inner]), g.scalar(`one_${x}`, 1)])]), g.scalar(`half_${x}`, 0.5)]);
}
