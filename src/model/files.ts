/**
 * Finding and fetching a model's files: a Hugging Face Hub repo id (with revision), any base URL,
 * or a local folder (Node) / URL prefix (browser). Downloads report progress in bytes and are
 * kept in the browser's Cache Storage, so a second visit works offline.
 */
import { ColbertError } from '../errors.ts';
import type { ProgressCallback } from '../types.ts';

/** Where a model's files come from. */
export interface ModelSource {
  kind: 'hub' | 'url' | 'path';
  /** What the caller passed (repo id, URL or path). */
  model: string;
  /** Base that file paths are appended to (URL with trailing slash, or folder path). */
  base: string;
  /** Hub revision (branch, tag or commit), when kind is 'hub'. */
  revision?: string;
}

/** Options for {@link resolveModelSource}. */
export interface SourceOptions {
  /** Hub revision: a branch, tag or commit hash. Default `'main'`. */
  revision?: string;
  /** Hub host. Default `'https://huggingface.co'`. Point it at a mirror or a local server. */
  hubUrl?: string;
  /** Path of a repo's files under the host, transformers.js's `env.remotePathTemplate` form. Default `'{model}/resolve/{revision}/'`. */
  pathTemplate?: string;
}

/** The default Hub host. */
export const DEFAULT_HUB_URL = 'https://huggingface.co';
/** Cache Storage bucket that holds downloaded model files. */
export const MODEL_CACHE_NAME = 'colbert-web-models-v1';

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
const URL_LIKE = /^(https?:|blob:|data:)/i;

const isNode = (): boolean =>
  typeof process !== 'undefined' && typeof process.versions === 'object' && typeof process.versions.node === 'string' &&
  typeof (globalThis as { window?: unknown }).window === 'undefined';

/**
 * Decides whether `model` is a Hub repo id, a URL or a local path.
 * - `http(s)://…` → URL. Relative paths starting with `/`, `./` or `../` → a URL relative to the
 *   page in browsers, a folder in Node.
 * - `owner/name` → Hub repo id, unless (in Node) a folder of that name exists... which we cannot
 *   check synchronously here, so Node callers pass `./owner/name` for such folders.
 */
export function resolveModelSource(model: string, options: SourceOptions = {}): ModelSource {
  if (typeof model !== 'string' || model.trim() === '') {
    throw new ColbertError('INVALID_ARGUMENT', 'The model must be a Hugging Face repo id ("owner/name"), a URL, or a local path.', { model });
  }
  const withSlash = (s: string): string => (s.endsWith('/') ? s : `${s}/`);
  if (URL_LIKE.test(model)) return { kind: 'url', model, base: withSlash(model) };
  if (/^(\/|\.\.?\/|[A-Za-z]:[\\/])/.test(model)) {
    if (isNode()) return { kind: 'path', model, base: withSlash(model) };
    const location = (globalThis as { location?: { href: string } }).location;
    return { kind: 'url', model, base: withSlash(location ? new URL(model, location.href).href : model) };
  }
  if (HUB_ID.test(model)) {
    const revision = options.revision ?? 'main';
    const host = (options.hubUrl ?? DEFAULT_HUB_URL).replace(/\/+$/, '');
    const path = (options.pathTemplate ?? '{model}/resolve/{revision}/').replaceAll('{model}', model).replaceAll('{revision}', encodeURIComponent(revision)).replace(/^\/+/, '');
    return { kind: 'hub', model, revision, base: `${host}/${path.endsWith('/') ? path : `${path}/`}` };
  }
  throw new ColbertError(
    'INVALID_ARGUMENT',
    `"${model}" is neither a Hugging Face repo id ("owner/name"), a URL ("https://…") nor a path ("./models/x", "/models/x").`,
    { model },
  );
}

/** Options for {@link fetchModelFile}. */
export interface FetchOptions {
  /** Keep and reuse downloads in Cache Storage (browsers). Default true. */
  cache?: boolean;
  onProgress?: ProgressCallback | undefined;
  /** Abort the download. */
  signal?: AbortSignal | undefined;
  /** false: never download; a file not in the cache counts as absent (transformers.js's `env.allowRemoteModels = false`). Default true. */
  remote?: boolean;
}

/** The URL (or path) of one file of a model. */
export function fileLocation(source: ModelSource, path: string): string {
  return source.base + path.split('/').map(encodeURIComponent).join('/');
}

async function openCache(enabled: boolean): Promise<Cache | undefined> {
  if (!enabled || typeof caches === 'undefined') return undefined;
  try {
    return await caches.open(MODEL_CACHE_NAME);
  } catch {
    return undefined; // opaque origins and some private modes have no Cache Storage
  }
}

async function readBody(response: Response, file: string, onProgress: ProgressCallback | undefined): Promise<Uint8Array> {
  const header = response.headers.get('content-length');
  const total = header !== null && /^\d+$/.test(header) ? Number(header) : null;
  if (!response.body) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  // With a known length, chunks go straight into one buffer: a large file (model weights) is then
  // never held twice while it downloads.
  let preallocated: Uint8Array | null = total !== null && total > 0 ? new Uint8Array(total) : null;
  let loaded = 0;
  let lastReport = 0;
  onProgress?.({ status: 'download', file, loaded: 0, total });
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (preallocated && loaded + value.byteLength <= preallocated.byteLength) preallocated.set(value, loaded);
    else {
      if (preallocated) chunks.push(preallocated.subarray(0, loaded));
      preallocated = null;
      chunks.push(value);
    }
    loaded += value.byteLength;
    const now = Date.now();
    if (now - lastReport > 100) {
      lastReport = now;
      onProgress?.({ status: 'download', file, loaded, total });
    }
  }
  onProgress?.({ status: 'download', file, loaded, total: total ?? loaded });
  if (preallocated) return loaded === preallocated.byteLength ? preallocated : preallocated.subarray(0, loaded);
  if (chunks.length === 1 && chunks[0]) return chunks[0];
  const out = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * Fetches one model file. Returns `null` when the file does not exist (HTTP 404 / no such file),
 * so callers can probe for alternatives; any other failure throws NETWORK_ERROR.
 */
export async function fetchModelFile(source: ModelSource, path: string, options: FetchOptions = {}): Promise<Uint8Array | null> {
  const location = fileLocation(source, path);
  if (source.kind === 'path') {
    const fs = await import(/* @vite-ignore */ /* webpackIgnore: true */ 'node:fs/promises');
    const nodePath = await import(/* @vite-ignore */ /* webpackIgnore: true */ 'node:path');
    try {
      const bytes = await fs.readFile(nodePath.join(source.base, ...path.split('/')));
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT' || (err as { code?: string }).code === 'ENOTDIR') return null;
      throw new ColbertError('NETWORK_ERROR', `Could not read ${location}: ${(err as Error).message}`, { file: location }, { cause: err });
    }
  }
  const cache = await openCache(options.cache ?? true);
  const cached = await cache?.match(location);
  if (cached) {
    const bytes = new Uint8Array(await cached.arrayBuffer());
    options.onProgress?.({ status: 'cached', file: path, bytes: bytes.byteLength });
    return bytes;
  }
  if (options.remote === false) return null;
  let response: Response;
  try {
    response = await fetch(location, options.signal ? { signal: options.signal } : {});
  } catch (err) {
    throw new ColbertError(
      'NETWORK_ERROR',
      `Could not download ${location} (${(err as Error).message}). Check the connection, or serve the model from a reachable URL; files downloaded once are cached for offline use.`,
      { file: location },
      { cause: err },
    );
  }
  if (response.status === 404) return null;
  if (response.status === 401 || response.status === 403) {
    throw new ColbertError(
      'MODEL_NOT_FOUND',
      `Access to ${location} was refused (HTTP ${response.status}). The repository may be private or gated, or the name misspelt.`,
      { file: location, status: response.status },
    );
  }
  if (!response.ok) {
    throw new ColbertError('NETWORK_ERROR', `Downloading ${location} failed with HTTP ${response.status}.`, { file: location, status: response.status });
  }
  // Static hosts that answer every unknown path with the site's page (HTTP 200): not a model file.
  if (/\.json$/i.test(path) && /^text\/html\b/i.test(response.headers.get('content-type') ?? '')) throw htmlInsteadOfJson(path, location);
  const bytes = await readBody(response, path, options.onProgress);
  if (cache) {
    try {
      await cache.put(location, new Response(bytes.slice().buffer, { headers: { 'content-type': 'application/octet-stream' } }));
    } catch {
      // A full quota only costs the offline copy; the model still loads from memory.
    }
  }
  return bytes;
}

/** MODEL_NOT_FOUND for a server that answered a model file's URL with an HTML page. */
function htmlInsteadOfJson(path: string, location: string): ColbertError {
  return new ColbertError('MODEL_NOT_FOUND', `${path} at ${location} was not found: the server answered with an HTML page where JSON was expected.`, { file: location, reason: 'html' });
}

/** Fetches and parses a JSON file; `null` when absent. */
export async function fetchModelJSON(source: ModelSource, path: string, options: FetchOptions = {}): Promise<Record<string, unknown> | null> {
  const bytes = await fetchModelFile(source, path, options);
  if (bytes === null) return null;
  // Also without a text/html content type: JSON never starts with '<'.
  if (/^\s*</.test(new TextDecoder().decode(bytes.subarray(0, 64)).replace(/^\uFEFF/, ''))) throw htmlInsteadOfJson(path, fileLocation(source, path));
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof value !== 'object' || value === null) throw new Error('not a JSON object');
    return value as Record<string, unknown>;
  } catch (err) {
    throw new ColbertError('MODEL_CONFIG_INVALID', `${fileLocation(source, path)} is not valid JSON: ${(err as Error).message}`, { file: path }, { cause: err });
  }
}

/**
 * Reads bytes stored under `key` (a URL) by {@link putCachedBytes}; null when absent or when
 * Cache Storage is unavailable (Node, opaque origins).
 */
export async function getCachedBytes(key: string): Promise<Uint8Array | null> {
  const cache = await openCache(true);
  const hit = await cache?.match(key);
  return hit ? new Uint8Array(await hit.arrayBuffer()) : null;
}

/** Stores bytes under `key` (a URL) in the model cache; false when it could not (no Cache Storage, quota). */
export async function putCachedBytes(key: string, bytes: Uint8Array): Promise<boolean> {
  const cache = await openCache(true);
  if (!cache) return false;
  try {
    await cache.put(key, new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { 'content-type': 'application/octet-stream' } }));
    return true;
  } catch {
    return false;
  }
}

/** Removes every cached model file (browsers). Resolves to true when a cache was deleted. */
export async function clearModelCache(): Promise<boolean> {
  if (typeof caches === 'undefined') return false;
  return caches.delete(MODEL_CACHE_NAME);
}
