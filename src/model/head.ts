/**
 * PyLate's projection head: one or more `Dense` modules (listed in `modules.json`) applied to each
 * token's hidden state, then L2 normalisation. Used for the transformers.js layout, whose ONNX
 * graph stops at `last_hidden_state`.
 */
import { ColbertError } from '../errors.ts';
import { fetchModelFile, fetchModelJSON, type FetchOptions, type ModelSource } from './files.ts';
import { parseSafetensors, tensorToFloat32 } from './safetensors.ts';

/** One Dense layer: `y = act(W x + b)`, W row-major [outFeatures, inFeatures]. */
export interface DenseLayer {
  inFeatures: number;
  outFeatures: number;
  weight: Float32Array;
  bias: Float32Array | null;
  activation: 'identity' | 'tanh';
}

const ACTIVATIONS: Record<string, DenseLayer['activation']> = {
  'torch.nn.modules.linear.Identity': 'identity',
  Identity: 'identity',
  'torch.nn.modules.activation.Tanh': 'tanh',
  Tanh: 'tanh',
};

async function loadDense(source: ModelSource, dir: string, options: FetchOptions): Promise<DenseLayer> {
  const config = await fetchModelJSON(source, `${dir}/config.json`, options);
  if (!config) throw new ColbertError('MODEL_CONFIG_INVALID', `${dir}/config.json is missing; PyLate Dense modules need it.`, { dir });
  const inFeatures = config['in_features'];
  const outFeatures = config['out_features'];
  if (!Number.isInteger(inFeatures) || !Number.isInteger(outFeatures)) {
    throw new ColbertError('MODEL_CONFIG_INVALID', `${dir}/config.json needs integer in_features and out_features.`, { dir, config });
  }
  const actName = typeof config['activation_function'] === 'string' ? config['activation_function'] : 'torch.nn.modules.linear.Identity';
  const activation = ACTIVATIONS[actName];
  if (!activation) {
    throw new ColbertError('MODEL_CONFIG_INVALID', `${dir}: unsupported Dense activation "${actName}" (supported: Identity, Tanh).`, { dir, activation: actName });
  }
  const bytes = await fetchModelFile(source, `${dir}/model.safetensors`, options);
  if (!bytes) {
    throw new ColbertError('MODEL_CONFIG_INVALID', `${dir}/model.safetensors is missing; the Dense head's weights must be in safetensors format.`, { dir });
  }
  const tensors = parseSafetensors(bytes);
  const w = tensors.get('linear.weight');
  if (!w) throw new ColbertError('MODEL_CONFIG_INVALID', `${dir}/model.safetensors has no "linear.weight" tensor.`, { dir, tensors: [...tensors.keys()] });
  const [rows, cols] = w.shape;
  if (w.shape.length !== 2 || rows !== outFeatures || cols !== inFeatures) {
    throw new ColbertError('MODEL_CONFIG_INVALID', `${dir}: linear.weight has shape [${w.shape.join(', ')}], expected [${String(outFeatures)}, ${String(inFeatures)}].`, { dir });
  }
  const b = tensors.get('linear.bias');
  return {
    inFeatures: inFeatures as number,
    outFeatures: outFeatures as number,
    weight: tensorToFloat32(w),
    bias: b ? tensorToFloat32(b) : null,
    activation,
  };
}

/**
 * Reads the Dense modules in `modules.json` order. Without a modules.json, a lone `1_Dense/`
 * folder is used when present. Returns [] when the model has no head (its graph then already
 * outputs the final dimension).
 */
export async function loadDenseHead(source: ModelSource, options: FetchOptions): Promise<DenseLayer[]> {
  const modules = await fetchModelFile(source, 'modules.json', options);
  let dirs: string[];
  if (modules) {
    let list: unknown;
    try {
      list = JSON.parse(new TextDecoder().decode(modules));
    } catch (err) {
      throw new ColbertError('MODEL_CONFIG_INVALID', `modules.json is not valid JSON: ${(err as Error).message}`);
    }
    if (!Array.isArray(list)) throw new ColbertError('MODEL_CONFIG_INVALID', 'modules.json must be a JSON array.');
    dirs = list
      .filter((m): m is { path: string; type: string } => typeof m?.type === 'string' && typeof m?.path === 'string' && /Dense/.test(m.type))
      .map((m) => m.path.replace(/\/+$/, ''));
  } else {
    dirs = (await fetchModelFile(source, '1_Dense/config.json', options)) ? ['1_Dense'] : [];
  }
  const layers: DenseLayer[] = [];
  for (const dir of dirs) layers.push(await loadDense(source, dir, options));
  for (let i = 1; i < layers.length; i++) {
    if (layers[i]!.inFeatures !== layers[i - 1]!.outFeatures) {
      throw new ColbertError('MODEL_CONFIG_INVALID', `Dense layer ${i} takes ${layers[i]!.inFeatures} features but the previous one gives ${layers[i - 1]!.outFeatures}.`);
    }
  }
  return layers;
}

/**
 * Applies the head to `rows` vectors of width `inDim` read from `input` at the given row indices,
 * writing L2-normalised rows of width `outDim` to a new array. Normalisation follows
 * `torch.nn.functional.normalize` (eps 1e-12), so an all-zero row stays zero.
 */
export function projectAndNormalize(input: Float32Array, inDim: number, rowIndices: ArrayLike<number>, layers: readonly DenseLayer[]): Float32Array {
  const outDim = layers.length ? layers[layers.length - 1]!.outFeatures : inDim;
  const n = rowIndices.length;
  const out = new Float32Array(n * outDim);
  const maxWidth = Math.max(inDim, ...layers.map((l) => l.outFeatures));
  let cur = new Float64Array(maxWidth);
  let next = new Float64Array(maxWidth);
  for (let r = 0; r < n; r++) {
    const base = rowIndices[r]! * inDim;
    for (let i = 0; i < inDim; i++) cur[i] = input[base + i]!;
    let width = inDim;
    for (const layer of layers) {
      const { weight, bias, inFeatures, outFeatures } = layer;
      for (let o = 0; o < outFeatures; o++) {
        let acc = bias ? bias[o]! : 0;
        const w = o * inFeatures;
        for (let i = 0; i < inFeatures; i++) acc += weight[w + i]! * cur[i]!;
        next[o] = layer.activation === 'tanh' ? Math.tanh(acc) : acc;
      }
      [cur, next] = [next, cur];
      width = outFeatures;
    }
    let norm = 0;
    for (let i = 0; i < width; i++) norm += cur[i]! * cur[i]!;
    const scale = 1 / Math.max(Math.sqrt(norm), 1e-12);
    const o = r * outDim;
    for (let i = 0; i < width; i++) out[o + i] = cur[i]! * scale;
  }
  return out;
}
