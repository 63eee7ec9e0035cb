/**
 * `colbert-web convert <repo-or-path> --out <dir> [--dtype fp32,fp16,q8,q4] [--revision r] [--hub-url u]`
 *
 * Converts a PyLate checkpoint (safetensors) into the transformers.js layout, ready for static
 * hosting next to a site: the checkpoint's configs, tokenizer and Dense head copied as they are,
 * plus `onnx/model{suffix}.onnx` per dtype (suffixes '' fp32, _fp16, _quantized q8, _q4). The
 * graphs hold the Dense head and the L2 norm (output `output`), which colbert-web detects.
 */
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isColbertError } from '../errors.ts';
import { convertCheckpoint, isConvertible } from '../model/convert/convert.ts';
import { CONVERT_DTYPES, type ConvertDtype } from '../model/convert/quantize.ts';
import { fetchModelFile, fetchModelJSON, resolveModelSource, type FetchOptions, type ModelSource } from '../model/files.ts';
import { loadDenseHead } from '../model/head.ts';

export const USAGE = `Usage: colbert-web convert <repo-or-path> --out <dir> [--dtype fp32,fp16,q8,q4] [--revision <rev>] [--hub-url <url>]

Converts a PyLate ModernBERT checkpoint (model.safetensors) to ONNX in the transformers.js layout:
  <out>/onnx/model.onnx (fp32), model_fp16.onnx, model_quantized.onnx (q8, for WASM), model_q4.onnx (4-bit, for WebGPU)
plus the checkpoint's configs, tokenizer and Dense head. Default --dtype: fp32,q8.`;

/** File name of a dtype in the transformers.js layout. */
export const ONNX_FILES: Record<ConvertDtype, string> = { fp32: 'onnx/model.onnx', fp16: 'onnx/model_fp16.onnx', q8: 'onnx/model_quantized.onnx', q4: 'onnx/model_q4.onnx' };

/** The checkpoint files copied unchanged beside the ONNX graphs (when present). */
const COPIED = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'modules.json', 'sentence_bert_config.json', 'config_sentence_transformers.json'];

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** Options of {@link convertToDirectory}. */
export interface ConvertCommandOptions {
  out: string;
  dtypes: ConvertDtype[];
  revision?: string;
  hubUrl?: string;
  log?: (line: string) => void;
}

/** Runs the conversion; returns the written files with their sizes in bytes. */
export async function convertToDirectory(model: string, options: ConvertCommandOptions): Promise<Record<string, number>> {
  const log = options.log ?? ((line: string) => console.log(line));
  const sourceOptions: { revision?: string; hubUrl?: string } = {};
  if (options.revision !== undefined) sourceOptions.revision = options.revision;
  if (options.hubUrl !== undefined) sourceOptions.hubUrl = options.hubUrl;
  const source: ModelSource = (await isDirectory(model)) ? resolveModelSource(`${resolve(model)}/`) : resolveModelSource(model, sourceOptions);
  let lastReport = 0;
  const fetchOptions: FetchOptions = {
    cache: false,
    onProgress: (p) => {
      if (p.status !== 'download' || p.file !== 'model.safetensors' || p.total === null) return;
      const now = Date.now();
      if (now - lastReport < 1000 && p.loaded !== p.total) return;
      lastReport = now;
      log(`  downloading model.safetensors: ${(p.loaded / 1e6).toFixed(0)} / ${(p.total / 1e6).toFixed(0)} MB`);
    },
  };
  const config = await fetchModelJSON(source, 'config.json', fetchOptions);
  if (!config) throw new Error(`${model}: no config.json found (${source.base}).`);
  if (!isConvertible(config)) throw new Error(`${model}: model_type ${JSON.stringify(config['model_type'])} is not supported (supported: modernbert).`);
  const written: Record<string, number> = {};
  const put = async (path: string, bytes: Uint8Array): Promise<void> => {
    const target = join(options.out, ...path.split('/'));
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, bytes);
    written[path] = bytes.byteLength;
  };
  const copied = [...COPIED];
  const modules = await fetchModelJSON(source, 'modules.json', fetchOptions);
  if (Array.isArray(modules)) {
    for (const m of modules as { path?: unknown; type?: unknown }[]) {
      if (typeof m.path === 'string' && m.path && typeof m.type === 'string' && /Dense/.test(m.type)) copied.push(`${m.path}/config.json`, `${m.path}/model.safetensors`);
    }
  } else copied.push('1_Dense/config.json', '1_Dense/model.safetensors');
  for (const file of copied) {
    const bytes = await fetchModelFile(source, file, fetchOptions);
    if (bytes) await put(file, bytes);
  }
  const head = await loadDenseHead(source, fetchOptions);
  const weights = await fetchModelFile(source, 'model.safetensors', fetchOptions);
  if (!weights) throw new Error(`${model}: no model.safetensors found.`);
  for (const dtype of options.dtypes) {
    const t0 = performance.now();
    const bytes = convertCheckpoint({ config, weights, head }, dtype);
    await put(ONNX_FILES[dtype], bytes);
    log(`  ${dtype.padEnd(4)} ${ONNX_FILES[dtype].padEnd(26)} ${(bytes.byteLength / 1e6).toFixed(1).padStart(7)} MB  (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
  return written;
}

/** `colbert-web convert ...`: argv after the command name; resolves to the exit code. */
export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { out: { type: 'string', short: 'o' }, dtype: { type: 'string' }, revision: { type: 'string' }, 'hub-url': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const [model, ...extra] = parsed.positionals;
  if (parsed.values.help) {
    console.log(USAGE);
    return 0;
  }
  if (model === undefined || extra.length || parsed.values.out === undefined) {
    console.error(USAGE);
    return 2;
  }
  const dtypes = (parsed.values.dtype ?? 'fp32,q8').split(',').map((d) => d.trim()).filter(Boolean);
  const bad = dtypes.filter((d) => !(CONVERT_DTYPES as readonly string[]).includes(d));
  if (bad.length || !dtypes.length) {
    console.error(`Unknown dtype(s) ${bad.join(', ')}; use ${CONVERT_DTYPES.join(', ')}.`);
    return 2;
  }
  const options: ConvertCommandOptions = { out: resolve(parsed.values.out), dtypes: dtypes as ConvertDtype[] };
  if (parsed.values.revision !== undefined) options.revision = parsed.values.revision;
  if (parsed.values['hub-url'] !== undefined) options.hubUrl = parsed.values['hub-url'];
  console.log(`Converting ${model} -> ${options.out}`);
  try {
    await convertToDirectory(model, options);
  } catch (err) {
    console.error(`colbert-web convert failed: ${isColbertError(err) ? `[${err.code}] ` : ''}${(err as Error).message}`);
    return 1;
  }
  console.log('Done. Serve the folder and pass its URL as `model` to createSearch.');
  return 0;
}
