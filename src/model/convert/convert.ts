/**
 * PyLate checkpoint (config.json, model.safetensors, modules.json + Dense folders) to one ONNX
 * graph with the Dense head and L2 normalisation inside (output `output` [batch, seq, dim]), in
 * any of the converter dtypes. Runs in browsers, workers and Node alike: no Python anywhere.
 */
import { ColbertError } from '../../errors.ts';
import type { Dtype } from '../../types.ts';
import { fetchModelFile, fetchModelJSON, type FetchOptions, type ModelSource } from '../files.ts';
import { loadDenseHead } from '../head.ts';
import { parseSafetensors, tensorToFloat32, type SafetensorsTensor } from '../safetensors.ts';
import { buildModernBertOnnx, parseModernBertConfig, type FloatTensor, type HeadLayer } from './modernbert.ts';
import { CONVERT_DTYPES, weightFormat, type ConvertDtype } from './quantize.ts';

/** Changes whenever converted bytes would differ; part of the cache key of converted models. */
export const CONVERTER_VERSION = 'colbert-web-convert-1';

/** Backbone architectures the converter supports (config.json `model_type`). */
export const CONVERTIBLE_MODEL_TYPES: readonly string[] = Object.freeze(['modernbert']);

/** True when `config` (config.json) names an architecture the converter can build. */
export function isConvertible(config: Record<string, unknown> | null | undefined): boolean {
  return typeof config?.['model_type'] === 'string' && CONVERTIBLE_MODEL_TYPES.includes(config['model_type']);
}

/** True when a library dtype has a converter equivalent. */
export function isConvertDtype(dtype: Dtype): dtype is ConvertDtype {
  return (CONVERT_DTYPES as readonly string[]).includes(dtype);
}

/**
 * Looks tensors up by their ModernBERT names, accepting checkpoints saved with a `model.` prefix
 * (a ModernBertForMaskedLM save) as well as the sentence-transformers save without one.
 */
function tensorLookup(tensors: Map<string, SafetensorsTensor>): (name: string) => FloatTensor | undefined {
  return (name) => {
    const t = tensors.get(name) ?? tensors.get(`model.${name}`);
    if (!t) return undefined;
    return { shape: t.shape, values: () => tensorToFloat32(t) };
  };
}

/** The parts of a checkpoint the converter needs, already read. */
export interface CheckpointParts {
  /** config.json */
  config: Record<string, unknown>;
  /** model.safetensors bytes */
  weights: Uint8Array;
  /** The PyLate Dense layers, in order (may be empty). */
  head: readonly HeadLayer[];
}

/** Converts a read checkpoint to ONNX bytes. Throws MODEL_CONFIG_INVALID for an unsupported or inconsistent checkpoint. */
export function convertCheckpoint(parts: CheckpointParts, dtype: ConvertDtype): Uint8Array {
  if (!isConvertible(parts.config)) {
    throw new ColbertError('MODEL_CONFIG_INVALID', `Cannot convert model_type ${JSON.stringify(parts.config['model_type'])}; the converter supports ${CONVERTIBLE_MODEL_TYPES.join(', ')}.`, {
      modelType: parts.config['model_type'],
    });
  }
  if (!(CONVERT_DTYPES as readonly string[]).includes(dtype)) {
    throw new ColbertError('INVALID_ARGUMENT', `Unknown conversion dtype ${JSON.stringify(dtype)}; use one of ${CONVERT_DTYPES.join(', ')}.`, { dtype });
  }
  const config = parseModernBertConfig(parts.config);
  return buildModernBertOnnx(config, tensorLookup(parseSafetensors(parts.weights)), parts.head, weightFormat(dtype));
}

/**
 * Reads a checkpoint from a model source (Hub, URL or folder) and converts it. `model.safetensors`
 * is downloaded with progress but not kept in Cache Storage (the converted bytes are what is worth
 * keeping). Resolves to null when the source has no model.safetensors.
 */
export async function convertFromSource(source: ModelSource, dtype: ConvertDtype, options: FetchOptions = {}): Promise<Uint8Array | null> {
  const config = await fetchModelJSON(source, 'config.json', options);
  if (!config) return null;
  const head = await loadDenseHead(source, options);
  const weights = await fetchModelFile(source, 'model.safetensors', { ...options, cache: false });
  if (!weights) return null;
  return convertCheckpoint({ config, weights, head }, dtype);
}
