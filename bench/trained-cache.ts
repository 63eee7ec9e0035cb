/**
 * A bench-only cache of a trained compressed index (codec, tree and every document's codes) in
 * .cache/, so a bench that measures search can skip the training (about a minute per million
 * tokens on this machine) on its second run. The index is opened from the cached codes through
 * the same `CompressedIndex.open(store, imported)` path an imported file takes, so searches run
 * on the same codes and slots a fresh training of the same data and seed gives.
 *
 * Not a format: the file is keyed by what the caller says made it (data, size, seed, nbits, pool)
 * plus a hash of the training code's source, and is rewritten whenever that key changes. A file
 * whose centroids are not IEEE halves (written before the codec stored fp16 centroids) is
 * retrained and rewritten: its residuals were taken against fp32 centroids, so rounding the
 * centroids on load would not give the codes a fresh training gives.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CompressedIndex } from '../src/compression.ts';
import type { VectorStore } from '../src/store/types.ts';
import { REPO_ROOT } from '../test/support/shared.ts';

const SOURCES = ['src/score/train.ts', 'src/store/residual.ts', 'src/store/codes.ts', 'test/fixtures/clustered.ts'];

function sourceHash(): string {
  const h = createHash('sha256');
  for (const f of SOURCES) h.update(readFileSync(resolve(REPO_ROOT, f)));
  return h.digest('hex').slice(0, 12);
}

type Arrays = Record<string, Float32Array | Uint32Array | Uint16Array | Uint8Array>;

function write(path: string, meta: object, arrays: Arrays): void {
  const head: Record<string, [string, number]> = {};
  for (const [k, a] of Object.entries(arrays)) head[k] = [a.constructor.name, a.length];
  const json = Buffer.from(JSON.stringify({ meta, head }));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  const parts: Buffer[] = [len, json];
  let at = 4 + json.length;
  for (const a of Object.values(arrays)) {
    const pad = (8 - (at % 8)) % 8;
    parts.push(Buffer.alloc(pad));
    parts.push(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    at += pad + a.byteLength;
  }
  writeFileSync(path, Buffer.concat(parts));
}

function read(path: string): { meta: Record<string, unknown>; arrays: Arrays } {
  const buf = readFileSync(path);
  const n = buf.readUInt32LE(0);
  const { meta, head } = JSON.parse(buf.subarray(4, 4 + n).toString()) as { meta: Record<string, unknown>; head: Record<string, [string, number]> };
  const arrays: Arrays = {};
  let at = 4 + n;
  const make = { Float32Array, Uint32Array, Uint16Array, Uint8Array } as const;
  for (const [k, [type, length]] of Object.entries(head)) {
    at += (8 - (at % 8)) % 8;
    const T = make[type as keyof typeof make];
    const bytes = length * T.BYTES_PER_ELEMENT;
    arrays[k] = new T(buf.buffer.slice(buf.byteOffset + at, buf.byteOffset + at + bytes));
    at += bytes;
  }
  return { meta, arrays };
}

/**
 * Opens `index` over `store` from the cached codes under `key`, or trains it (`index.open`) and
 * caches the result. Returns the milliseconds the training took (0 when read from the cache).
 */
export async function openTrained(index: CompressedIndex, store: VectorStore, key: string): Promise<{ trainMs: number; cached: boolean }> {
  const dir = resolve(REPO_ROOT, '.cache/trained');
  const path = resolve(dir, `${key.replace(/[^a-z0-9.=_-]+/gi, '_')}-${sourceHash()}.bin`);
  const cached = existsSync(path) ? read(path) : null;
  const centroids = cached?.arrays['centroids'];
  if (cached && centroids instanceof Uint16Array) {
    const { meta, arrays } = cached;
    const ids = meta['ids'] as string[];
    const counts = arrays['counts'] as Uint32Array;
    const offsets = new Uint32Array(ids.length + 1);
    for (let i = 0; i < ids.length; i++) offsets[i + 1] = offsets[i]! + counts[i]!;
    const codec = {
      codec: { dim: meta['dim'] as number, nbits: meta['nbits'] as 1 | 2 | 4, centroids, cutoffs: arrays['cutoffs'] as Float32Array, weights: arrays['weights'] as Float32Array },
      tree: { coarse: arrays['coarse'] as Float32Array, starts: arrays['starts'] as Uint32Array },
      trainedTokens: meta['trainedTokens'] as number,
      poolFactor: meta['poolFactor'] as number,
    };
    await index.open(store, { codes: { codec, codes: [{ codes: arrays['codes'] as Uint16Array, residuals: arrays['residuals'] as Uint8Array }] }, shards: [{ docIds: ids, offsets }] });
    if (!index.generation) throw new Error(`cached codes ${path} did not fit the index`);
    return { trainMs: 0, cached: true };
  }
  const t = performance.now();
  await index.open(store);
  const trainMs = performance.now() - t;
  const g = index.generation!;
  const { codec, tree, trainedTokens } = g.trained;
  const ids: string[] = [];
  for (let s = 0; s < g.codes.slots; s++) if (g.codes.live(s)) ids.push(g.codes.id(s)!);
  const counts = new Uint32Array(ids.length);
  let total = 0;
  const docs = ids.map((id, i) => {
    const d = g.codes.document(id)!;
    counts[i] = d.codes.length;
    total += d.codes.length;
    return d;
  });
  const codes = new Uint16Array(total);
  const residuals = new Uint8Array(total * g.codes.bytesPerToken);
  let at = 0;
  for (const d of docs) {
    codes.set(d.codes, at);
    residuals.set(d.residuals, at * g.codes.bytesPerToken);
    at += d.codes.length;
  }
  mkdirSync(dir, { recursive: true });
  write(path, { ids, dim: codec.dim, nbits: codec.nbits, trainedTokens, poolFactor: index.options.poolFactor }, {
    centroids: codec.centroids, cutoffs: codec.cutoffs, weights: codec.weights, coarse: tree.coarse, starts: tree.starts, counts, codes, residuals,
  });
  return { trainMs, cached: false };
}
