/**
 * The compressed, candidate-generating index (PLAID style) as the engine runs it: it trains a codec
 * from the store's own vectors (../score/train.ts), keeps every document as centroid codes and
 * residuals (./store/codes.ts), and answers a query in four stages (../score/compressed.ts):
 *
 * 1. query x centroids; per query token its `nprobe` best centroids;
 * 2. candidates: the union of those centroids' inverted lists (live, allowed documents only);
 * 3. centroid interaction prunes them to `candidates` documents;
 * 4. they are scored from their residuals; with rerank, the best `rerankDepth` of those (64 by
 *    default, see {@link defaultKnobs}) are then scored from the store's full-precision vectors
 *    by the engine's MaxSim scorer, so their scores are exactly the exhaustive ones. Before the
 *    residual stage, the best survivors by centroid interaction (the likely rerank set) are handed
 *    to the engine's prefetch, so a store whose rows are on demand reads them meanwhile.
 *
 * Where the store persists codes (IndexedDB, `store.codes`), the codec and codes are stored by
 * generation and read back on open instead of training again: writes encode their rows in their
 * own transaction, a (re)training writes a new generation and flips to it in one transaction
 * (../store/types.ts `CodeStore`). The memory store keeps them in memory only.
 *
 * The stages of 1-3 and the residual scoring run on the CPU kernels, or in WGSL on the engine's
 * GPU scoring device when MaxSim runs there (../score/compressed-stages.ts and
 * ../score/compressed-gpu-stages.ts), through one search flow, so both give the same candidates.
 *
 * Like ./engine.ts this module knows store/ and score/; it never imports model/.
 */
import { ColbertError, isColbertError } from './errors.ts';
import { kernelCopyBytes, residentCentroids } from './score/centroid-simd.ts';
import { candidateSlots, topIndexes, type CompressedKernels } from './score/compressed.ts';
import { cpuStages, wasmCompressedKernels, type CompressedStages, type StageDevice } from './score/compressed-stages.ts';
import { assignCodes, centroidCountFor, MIN_TRAIN_TOKENS, SAMPLE_PER_CENTROID, sampleRows, seededRandom, trainCodec, type TrainedCodec } from './score/train.ts';
import type { Scored } from './score/topk.ts';
import { CodeSet, shardCodes } from './store/codes.ts';
import { POOL_FACTORS } from './store/pooling.ts';
import { decodeRows } from './store/precision.ts';
import { centroidCount, encodeResidual, RESIDUAL_BITS, residualBytes, type ResidualBits } from './store/residual.ts';
import type { CodeEncoder, CodeStore, DocCodes, IndexSnapshot, PersistedCodec, ShardView, SnapshotCodes, TaggedCodes, VectorStore } from './store/types.ts';
import type { TokenMatrix } from './types.ts';

/** `createSearch({ compression })`: how documents are compressed. */
export interface CompressionOptions {
  /** Bits per dimension of the residual: 1, 2 (default) or 4. */
  nbits?: ResidualBits;
  /** Hierarchical token pooling of documents (PyLate): 1 (none, default), 2 or 3 times fewer tokens. */
  poolFactor?: 1 | 2 | 3;
  /** Rescore the best candidates from full-precision vectors, so their scores are exact. Default true. */
  rerank?: boolean;
}

/** Compression options with defaults applied. */
export type ResolvedCompression = Required<CompressionOptions>;

/** Validates `compression` (INVALID_ARGUMENT); undefined when not asked for. */
export function checkCompression(value: unknown): ResolvedCompression | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ColbertError('INVALID_ARGUMENT', 'compression must be an object { nbits?: 1 | 2 | 4, poolFactor?: 1 | 2 | 3, rerank?: boolean }.', { compression: value });
  }
  const { nbits = 2, poolFactor = 1, rerank = true, ...rest } = value as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length) throw new ColbertError('INVALID_ARGUMENT', `Unknown compression option ${unknown.map((k) => `"${k}"`).join(', ')}; use nbits, poolFactor, rerank.`, { options: unknown });
  if (!RESIDUAL_BITS.includes(nbits as ResidualBits)) throw new ColbertError('INVALID_ARGUMENT', `compression.nbits must be 1, 2 or 4; got ${JSON.stringify(nbits)}.`, { nbits });
  if (!POOL_FACTORS.includes(poolFactor as number)) throw new ColbertError('INVALID_ARGUMENT', `compression.poolFactor must be 1, 2 or 3; got ${JSON.stringify(poolFactor)}.`, { poolFactor });
  if (typeof rerank !== 'boolean') throw new ColbertError('INVALID_ARGUMENT', `compression.rerank must be true or false; got ${JSON.stringify(rerank)}.`, { rerank });
  return { nbits: nbits as ResidualBits, poolFactor: poolFactor as 1 | 2 | 3, rerank };
}

/** Per-query knobs of the compressed search (defaults by index size, see {@link defaultKnobs}). */
export interface CompressedSearchOptions {
  /** Centroids probed per query token. */
  nprobe?: number;
  /** Documents kept after centroid interaction and scored from residuals. */
  candidates?: number;
  /** Documents rescored from full vectors (rerank only). */
  rerankDepth?: number;
  /** Only documents this accepts are candidates (a filter); the others cost nothing. */
  allowed?: (id: string) => boolean;
  /** Overrides the index's `rerank` for this query (benchmarks compare both on one index). */
  rerank?: boolean;
}

/**
 * Knob defaults: wider probes for small indexes, where every list is short; and at least 512
 * survivors of centroid interaction, 16 per hit beyond, and one per 16,384 tokens in large
 * indexes (on the synthetic 10M-token set, with about 10,000 candidates, 0.960 of the exhaustive
 * top 10 survive among 256, 1.000 among 512). PLAID's `ndocs` is 256 for k <= 10, with its
 * centroid count; with the memory-bounded count (at least 256 tokens per centroid, see
 * ../score/train.ts centroidCountFor) centroid interaction is coarser below 2^24 tokens: on
 * Cranfield its 512 centroids keep 0.972 of the exhaustive top 10 among 256 survivors and 0.990
 * among 512, hence 512.
 * Measured with `bench/compressed-stages.ts` (recall of the exhaustive top 10 after each stage):
 * on Cranfield (contextual test model, 261k tokens) the inverted lists hold every relevant
 * document already, and it is centroid interaction that drops them: 0.94 of the exhaustive top
 * 10 survive among 64 documents, 0.98 among 128, 0.999 among 256.
 *
 * With rerank (PLAID-like), the survivors are scored from their residuals (WASM SIMD decoding and
 * MaxSim) and only the best `rerankDepth` of them, 64 for k <= 16 and 4 per hit beyond, are
 * rescored exactly from full vectors: each of those is a read of stored vectors (from IndexedDB
 * where they are not resident), so few is cheap. Measured with `bench/compressed-stages.ts
 * --profile --depth=32,64,96,128,256` (top-10 overlap with exhaustive fp32 after the rerank):
 * Cranfield (contextual test model, 100 queries) 0.998 at depth 32, 0.999 at 64 and beyond (the
 * same as rescoring all 256 survivors); synthetic 1M tokens (30 queries) 1.000 from depth 32 on.
 */
export function defaultKnobs(tokens: number, k: number): Required<Pick<CompressedSearchOptions, 'nprobe' | 'candidates' | 'rerankDepth'>> {
  const nprobe = tokens < 262_144 ? 4 : tokens < 4_194_304 ? 3 : 2;
  const candidates = Math.max(512, 16 * k, Math.ceil(tokens / 16_384));
  return { nprobe, candidates, rerankDepth: Math.min(candidates, Math.max(64, 4 * k)) };
}

/** The state the compressed index is in. */
export type CompressionState = 'exhaustive' | 'training' | 'ready';

/** What stats() reports about compression. */
export interface CompressionStats {
  state: CompressionState;
  nbits: ResidualBits;
  poolFactor: number;
  rerank: boolean;
  /** Centroids of the codec in use (0 before training). */
  centroids: number;
  /** Tokens the codec in use was trained for. */
  trainedTokens: number;
  /**
   * Resident bytes of codes, residuals, centroids (fp16, every copy: the WASM kernel's table
   * included, which is the codec's only copy where WebAssembly SIMD runs), buckets, the centroid
   * tree, slots and inverted lists (ids, GPU buffers and the kernels' fixed scratch excluded).
   */
  codeBytes: number;
  /**
   * Codecs this search trained itself since it was created: 0 when it read its codes from
   * IndexedDB or from an imported file (see the README's "Compressed index").
   */
  trainings: number;
  /** Where the search stages (query x centroids, centroid interaction, residual scoring) run: 'webgpu' where MaxSim does, else 'cpu'. */
  scoringDevice: StageDevice;
  /** Why they do not run on the GPU, when they do not ('cpu' asked for: absent). */
  scoringFallbackReason?: string;
}

/** @internal What the last compressed query did (tests compare the GPU and CPU stages through it). */
export interface CompressedTrace {
  /** Where its stages ran. */
  device: StageDevice;
  /** Centroids probed per query token (wider than asked when too few candidates came). */
  nprobe: number;
  /** Ids of the candidates from the inverted lists (live, allowed), in slot order. */
  candidates: string[];
  /** Ids kept by centroid interaction, in slot order (all candidates when they were few enough). */
  survivors: string[];
  /** Whether the survivors were scored from their residuals (rerank false, or more survivors than the rerank depth). */
  residual: boolean;
  /** How many documents were rescored exactly from the stored vectors (0 without rerank). */
  rescored: number;
  /** How many of the best survivors by centroid interaction were given to `prefetch` before the residual stage (0 when none were). */
  prefetched: number;
  /**
   * Milliseconds of each stage that ran (wall clock on the calling thread): `centroids` (query x
   * centroids), `probes`, `union` (the candidates from the inverted lists), `interaction`,
   * `residual`, `rerank` (the `exact` call: reading the rows and scoring them).
   */
  stageMs: Partial<Record<'centroids' | 'probes' | 'union' | 'interaction' | 'residual' | 'rerank', number>>;
}

/**
 * How many of the best survivors by centroid interaction, per document of the rerank depth, a
 * search hands to `prefetch` before the residual stage (their rows are then read while it runs).
 */
export const PREFETCH_PER_RERANK = 0.5;

/** Tokens encoded between yields while (re)training in the background. */
const YIELD_TOKENS = 2048;
/** Most tokens k-means trains on (SAMPLE_PER_CENTROID, 64, per centroid below that); every token is then assigned in one pass. */
export const MAX_TRAIN_SAMPLE = 262_144;
/** Re-train once the index holds this many times the tokens its centroids were trained for. */
export const RETRAIN_GROWTH = 4;

const nextTick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** Tokens of codes written per transaction while a training stores a new generation. */
const WRITE_TOKENS = 65_536;

/** One trained generation: codec + codes. */
interface Generation {
  trained: TrainedCodec;
  codes: CodeSet;
  /** Its number in the store's code store (0: in memory only). */
  id: number;
  /** Per document, the tag of the rows its codes were encoded from (code stores only). */
  tags: Map<string, string>;
}

/** Resident bytes of a trained codec: centroids and the tree's coarse level with their kernel copies, buckets, tree boundaries. */
export function codecBytes(trained: TrainedCodec): number {
  const { codec, tree } = trained;
  const centroids = codec.centroids.byteLength + kernelCopyBytes(codec.dim, codec.centroids);
  const coarse = tree.coarse.byteLength + kernelCopyBytes(codec.dim, tree.coarse);
  return centroids + coarse + tree.starts.byteLength + (codec.cutoffs.length + codec.weights.length) * 4;
}

/** A trained codec as a code store keeps it. */
function persisted(trained: TrainedCodec, poolFactor: number): PersistedCodec {
  return { codec: trained.codec, tree: trained.tree, trainedTokens: trained.trainedTokens, poolFactor };
}

/** Whether stored or imported codes fit these options (else the index trains its own). */
export function codecFits(codec: PersistedCodec, options: ResolvedCompression, dim: number | null): boolean {
  return codec.codec.nbits === options.nbits && codec.poolFactor === options.poolFactor && (dim === null || codec.codec.dim === dim);
}

/** Hears {@link CompressedIndex.ready} (see {@link CompressedIndex.onReadyChange}). */
export type ReadyListener = (ready: boolean) => void | Promise<void>;

/** A file's codes and the shard layout they follow (a memory store's import). */
type OpenedCodes = { codes: SnapshotCodes; shards: readonly { docIds: readonly string[]; offsets: Uint32Array }[] };

/** The compressed index of one engine. */
export class CompressedIndex {
  private current: Generation | null = null;
  private training: Promise<void> | null = null;
  /** Ids changed while a (re)training runs: re-encoded into the new generation before it is swapped in. */
  private changed = new Set<string>();
  private epoch = 0;
  private failure: unknown = undefined;
  private trainingsRun = 0;
  /** Codes a store's write encoded (in its transaction), by id, until {@link update} takes them. */
  private readonly recent = new Map<string, TaggedCodes & { generation: number }>();
  /** The code store whose writes encode with the current generation. */
  private bound: CodeStore | undefined;
  /** Syncs with another context's changes run one after another. */
  private syncing: Promise<void> = Promise.resolve();
  /** The stages on the CPU kernels, and on the GPU when the engine's scorer runs there ({@link setGpu}). */
  private readonly cpu: CompressedStages;
  private gpu: CompressedStages | undefined;
  /** Why the GPU stages failed (searches then run on the CPU). */
  private gpuFailure: string | undefined;
  /** Why no GPU stages were given, when the engine says. */
  private noGpuReason: string | undefined;
  private trace: CompressedTrace | undefined;
  /** Told whenever {@link ready} flips (see {@link onReadyChange}). */
  private readonly readyListeners: ReadyListener[] = [];
  /** The listeners' calls so far, one after another. */
  private notified: Promise<void> = Promise.resolve();
  /** The readiness last told (or that would have been, with no listener yet). */
  private told = false;
  /** While positive ({@link reopen}), flips are not told: only where it ends. */
  private quiet = 0;

  constructor(
    readonly options: ResolvedCompression,
    kernels: CompressedKernels = wasmCompressedKernels,
    private readonly seed = 1,
  ) {
    this.cpu = cpuStages(kernels);
  }

  /** Whether searches use the codes. */
  get ready(): boolean {
    return this.current !== null;
  }

  /** The codec in use, for tests and diagnostics. */
  get generation(): Readonly<Generation> | null {
    return this.current;
  }

  stats(): CompressionStats {
    const g = this.current;
    const codec = g?.trained.codec;
    const where = this.scoring();
    const stats: CompressionStats = {
      state: this.training ? 'training' : g ? 'ready' : 'exhaustive',
      nbits: this.options.nbits,
      poolFactor: this.options.poolFactor,
      rerank: this.options.rerank,
      centroids: codec ? centroidCount(codec) : 0,
      trainedTokens: g?.trained.trainedTokens ?? 0,
      codeBytes: g ? g.codes.bytes() + codecBytes(g.trained) : 0,
      trainings: this.trainingsRun,
      scoringDevice: where.device,
    };
    if (where.fallbackReason !== undefined) stats.scoringFallbackReason = where.fallbackReason;
    return stats;
  }

  /** Resolves when no training runs (rethrowing a failure of the last one). */
  async settled(): Promise<void> {
    while (this.training) await this.training;
    await this.notified;
    if (this.failure !== undefined) {
      const err = this.failure;
      this.failure = undefined;
      throw err;
    }
  }

  /** Resolves when no training runs (never throws; see {@link settled}). */
  async idle(): Promise<void> {
    while (this.training) await this.training;
    await this.notified;
  }

  /** The current codes laid out like a snapshot's shards, when they cover exactly its documents (else undefined). */
  snapshotCodes(snapshot: IndexSnapshot): SnapshotCodes | undefined {
    const g = this.current;
    if (!g || g.codes.documents !== snapshot.documents.length) return undefined;
    const codes = shardCodes(snapshot.shards, g.codes.bytesPerToken, (_, id) => g.codes.document(id));
    return codes && { codec: persisted(g.trained, this.options.poolFactor), codes };
  }


  /**
   * Calls `listener` now with {@link ready}, and again after every change of it: the first
   * training (awaited or in the background), a sync with another context's codes, a clear (not
   * a close: {@link dispose} drops the listeners first). An import ({@link reopen}) tells only
   * where it ends, not the reset on the way. Calls run one after another, each with the
   * readiness as it is when it runs; a call that throws is ignored. Every method that may change
   * the readiness (update, open, reopen, sync, reset, settled, idle) resolves only after the
   * calls it caused. Resolves when this first call is done.
   */
  onReadyChange(listener: ReadyListener): Promise<void> {
    this.readyListeners.push(listener);
    return this.notify([listener]);
  }

  /** Queues one call of each of `listeners` with the readiness at that time; resolves when they ran. */
  private notify(listeners: readonly ReadyListener[] = this.readyListeners): Promise<void> {
    for (const listener of listeners) this.notified = this.notified.then(() => listener(this.ready)).catch(() => undefined);
    return this.notified;
  }

  /** The one way {@link current} changes: the listeners hear when readiness flips. */
  private setCurrent(g: Generation | null): void {
    this.current = g;
    this.tell();
  }

  /** Tells the listeners when the readiness differs from what they were last told (unless quiet). */
  private tell(): void {
    if (this.quiet > 0 || this.ready === this.told) return;
    this.told = this.ready;
    void this.notify();
  }

  /** Forgets everything (clear): the next {@link update} trains again from the store. Resolves once the listeners heard of it. */
  reset(): Promise<void> {
    this.forget();
    return this.notified;
  }

  /**
   * Forgets everything and opens again from what the store holds now (an import, another
   * context's clear or import; `imported` as for {@link open}). The listeners hear only where
   * it ends: an import with codes never brings every row back on the way.
   */
  async reopen(store: VectorStore, imported?: OpenedCodes): Promise<void> {
    this.quiet++;
    try {
      this.forget();
      await this.openNow(store, imported);
    } finally {
      this.quiet--;
      this.tell();
    }
    await this.notified;
  }

  private forget(): void {
    this.epoch++;
    this.setCurrent(null);
    this.training = null;
    this.changed.clear();
    this.gpu?.drop();
    this.recent.clear();
    this.bound?.setCodeEncoder(null);
    this.bound = undefined;
  }

  /** Forgets the codes and the listeners, without telling them (the engine closes). */
  dispose(): void {
    this.readyListeners.length = 0;
    this.forget();
  }

  /** Makes `g` the generation searches use; a code store's writes then encode with it. */
  private use(g: Generation, store: CodeStore | undefined): void {
    this.setCurrent(g);
    if (store && g.id > 0) {
      store.setCodeEncoder(this.encoderFor(g));
      this.bound = store;
    }
  }

  /** What a code store's writes encode with: `g`'s codec, remembering the codes for {@link update}. */
  private encoderFor(g: Generation): CodeEncoder {
    return {
      generation: g.id,
      encode: (id, tag, m) => {
        const c = this.encode(g.trained, m);
        this.recent.set(id, { ...c, tag, generation: g.id });
        return c;
      },
    };
  }

  /** Encodes one matrix against a codec. */
  private encode(trained: TrainedCodec, m: TokenMatrix): { codes: Uint16Array; residuals: Uint8Array } {
    const { codec, tree } = trained;
    const bytes = residualBytes(codec.dim, codec.nbits);
    const codes = new Uint16Array(m.tokens);
    assignCodes(m.data, 0, m.tokens, m.dim, codec.centroids, tree, codes);
    const residuals = new Uint8Array(m.tokens * bytes);
    for (let j = 0; j < m.tokens; j++) encodeResidual(codec, m.data, j * m.dim, codes[j]!, residuals, j * bytes);
    return { codes, residuals };
  }

  /**
   * After a committed change: encodes the changed documents (their vectors as stored), forgets the
   * removed ones, and starts training when the index first has enough tokens (awaited: the call
   * that crosses the threshold returns with codes in place) or re-training in the background when
   * it has outgrown its centroids.
   */
  async update(store: VectorStore, changedIds: readonly string[], removedIds: readonly string[] = []): Promise<void> {
    await this.updateNow(store, changedIds, removedIds);
    await this.notified;
  }

  private async updateNow(store: VectorStore, changedIds: readonly string[], removedIds: readonly string[]): Promise<void> {
    for (const id of [...changedIds, ...removedIds]) if (this.training) this.changed.add(id);
    const g = this.current;
    if (g) {
      for (const id of removedIds) {
        g.codes.remove(id);
        g.tags.delete(id);
      }
      const missing: string[] = [];
      for (const id of changedIds) {
        // Encoded by the store's write (in its transaction) with this generation: take those.
        const r = this.recent.get(id);
        this.recent.delete(id);
        if (r && r.generation === g.id) {
          g.codes.add(id, r.codes, r.residuals);
          g.tags.set(id, r.tag);
        } else {
          missing.push(id);
        }
      }
      if (missing.length) await this.encodeInto(g, store, missing);
    }
    const { tokens } = await store.stats();
    if (this.training) return;
    if (!g && tokens >= MIN_TRAIN_TOKENS) {
      this.startTraining(store, tokens, false);
      await this.settled();
    } else if (g && tokens >= RETRAIN_GROWTH * g.trained.trainedTokens) {
      this.startTraining(store, tokens, true);
    }
  }

  /**
   * Encodes documents of the store into `g` (their rows as stored now) and, in a code store,
   * stores those codes where `g` is its current generation.
   */
  private async encodeInto(g: Generation, store: VectorStore, ids: readonly string[]): Promise<void> {
    const cs = store.codes;
    // Tags first, rows after: a write in between leaves an older tag on newer codes, which only costs a re-encode later.
    const tags = cs ? await cs.codeTags() : undefined;
    const fixed = new Map<string, TaggedCodes>();
    // Read in batches: a store with rows on demand reads each batch in one transaction.
    let batch: (TokenMatrix | undefined)[] = [];
    for (const [i, id] of ids.entries()) {
      if (i % 256 === 0) batch = await store.matrices(ids.slice(i, i + 256));
      const m = batch[i % 256];
      if (!m) {
        g.codes.remove(id);
        g.tags.delete(id);
        continue;
      }
      const c = this.encode(g.trained, m);
      g.codes.add(id, c.codes, c.residuals);
      const tag = tags?.get(id);
      if (tag === undefined) continue;
      g.tags.set(id, tag);
      fixed.set(id, { tag, ...c });
    }
    // Storing them is an optimisation (the next open would encode them again): a full quota or a lost race is not an error here.
    if (cs && g.id > 0) await cs.writeCodes(g.id, fixed).catch(() => undefined);
  }

  /**
   * The code store's current generation as `Generation`, when it fits the options: stored codes
   * whose tag matches their document are used as they are; documents without (written by an
   * older version, or by a context without this codec) are encoded now and stored.
   */
  private async load(store: VectorStore, cs: CodeStore): Promise<Generation | undefined> {
    const stored = await cs.readCodec();
    if (!stored || !codecFits(stored, this.options, store.dim)) return undefined;
    const trained: TrainedCodec = { codec: stored.codec, tree: stored.tree, trainedTokens: stored.trainedTokens };
    residentCentroids(trained.codec);
    const g: Generation = { trained, codes: new CodeSet(residualBytes(stored.codec.dim, stored.codec.nbits), centroidCount(stored.codec)), id: stored.generation, tags: new Map() };
    const tags = await cs.codeTags();
    const codes = await cs.readCodes(stored.generation);
    const stale: string[] = [];
    let storedTokens = 0;
    for (const c of codes.values()) storedTokens += c.codes.length;
    g.codes.reserve(storedTokens, codes.size);
    for (const [id, tag] of tags) {
      const c = codes.get(id);
      if (c && c.tag === tag) {
        g.codes.add(id, c.codes, c.residuals);
        g.tags.set(id, tag);
      } else {
        stale.push(id);
      }
    }
    if (stale.length) await this.encodeInto(g, store, stale);
    return g;
  }

  /**
   * Opening an existing index: reads the stored codes (a code store whose codec fits), else
   * trains from what the store holds (awaited). `imported` are a file's codes (memory stores;
   * a code store has stored them already).
   */
  async open(store: VectorStore, imported?: OpenedCodes): Promise<void> {
    await this.openNow(store, imported);
    await this.notified;
  }

  private async openNow(store: VectorStore, imported?: OpenedCodes): Promise<void> {
    const epoch = this.epoch;
    const cs = store.codes;
    if (cs) {
      // Leftovers of a training that never switched (a page closed meanwhile); not while another context trains.
      await cs.exclusiveTraining(() => cs.dropLeftovers()).catch(() => undefined);
      const g = await this.load(store, cs);
      if (epoch !== this.epoch) return;
      if (g) {
        this.use(g, cs);
        await this.maybeRetrain(store);
        return;
      }
    } else if (imported && codecFits(imported.codes.codec, this.options, store.dim)) {
      const { codec, tree, trainedTokens } = imported.codes.codec;
      const bytes = residualBytes(codec.dim, codec.nbits);
      residentCentroids(codec);
      const g: Generation = { trained: { codec, tree, trainedTokens }, codes: new CodeSet(bytes, centroidCount(codec)), id: 0, tags: new Map() };
      g.codes.reserve(imported.codes.codes.reduce((n, part) => n + part.codes.length, 0), imported.shards.reduce((n, shard) => n + shard.docIds.length, 0));
      imported.shards.forEach((shard, i) => {
        const part = imported.codes.codes[i]!;
        shard.docIds.forEach((id, slot) => {
          const from = shard.offsets[slot]!;
          const to = shard.offsets[slot + 1]!;
          g.codes.add(id, part.codes.slice(from, to), part.residuals.slice(from * bytes, to * bytes));
        });
      });
      this.use(g, undefined);
      await this.maybeRetrain(store);
      return;
    }
    const { tokens } = await store.stats();
    if (tokens >= MIN_TRAIN_TOKENS) {
      this.startTraining(store, tokens, false);
      await this.settled();
    }
  }

  /** Re-trains in the background once the index has outgrown its centroids. */
  private async maybeRetrain(store: VectorStore): Promise<void> {
    const g = this.current;
    if (!g || this.training) return;
    const { tokens } = await store.stats();
    if (tokens >= RETRAIN_GROWTH * g.trained.trainedTokens) this.startTraining(store, tokens, true);
  }

  /**
   * Another context changed the store. With a code store: a new generation there (another
   * context re-trained) is read whole; else the documents whose tags changed get their stored
   * codes (or are encoded), removed ones leave. Never trains what it can read. Without one:
   * forget the codes and train again.
   */
  async sync(store: VectorStore): Promise<void> {
    const run = this.syncing.then(() => this.syncNow(store));
    this.syncing = run.catch(() => undefined);
    await run;
    await this.notified;
  }

  private async syncNow(store: VectorStore): Promise<void> {
    const cs = store.codes;
    const epoch = this.epoch;
    if (!cs) {
      await this.reopen(store);
      return;
    }
    const g = this.current;
    const stored = await cs.readCodec();
    if (!stored && g && g.id > 0) {
      // Another context cleared or imported an index without codes: start over from what it holds.
      await this.reopen(store);
      return;
    }
    if (stored && stored.generation !== g?.id && codecFits(stored, this.options, store.dim)) {
      const next = await this.load(store, cs);
      if (next && epoch === this.epoch && stored.generation !== this.current?.id) this.use(next, cs);
      return;
    }
    if (!g) {
      const { tokens } = await store.stats();
      if (!this.training && tokens >= MIN_TRAIN_TOKENS) this.startTraining(store, tokens, true);
      return;
    }
    const tags = await cs.codeTags();
    for (const id of [...g.tags.keys()]) {
      if (tags.has(id)) continue;
      g.codes.remove(id);
      g.tags.delete(id);
    }
    const changed = [...tags].filter(([id, tag]) => g.tags.get(id) !== tag).map(([id]) => id);
    if (changed.length) {
      const codes = g.id > 0 ? await cs.readCodes(g.id, changed) : new Map<string, TaggedCodes>();
      const missing: string[] = [];
      for (const id of changed) {
        const c = codes.get(id);
        if (c && c.tag === tags.get(id)) {
          g.codes.add(id, c.codes, c.residuals);
          g.tags.set(id, c.tag);
        } else {
          missing.push(id);
        }
      }
      if (missing.length) await this.encodeInto(g, store, missing);
    }
    await this.maybeRetrain(store);
  }

  private startTraining(store: VectorStore, tokens: number, background: boolean): void {
    const epoch = this.epoch;
    this.changed.clear();
    const cs = store.codes;
    const run = (async () => {
      if (cs) {
        await cs.exclusiveTraining(() => this.trainStored(store, cs, tokens, background, epoch));
        return;
      }
      const next = await this.train(store, tokens, background);
      this.trainingsRun++;
      await this.adoptInMemory(next, store, epoch);
    })();
    this.training = run.then(
      () => {
        if (epoch === this.epoch) this.training = null;
      },
      (err: unknown) => {
        if (epoch === this.epoch) {
          this.training = null;
          this.failure = err;
        }
      },
    );
  }

  /** Brings what changed while `next` trained into it, then swaps it in (in memory) in one step. */
  private async adoptInMemory(next: Generation, store: VectorStore, epoch: number): Promise<void> {
    if (epoch !== this.epoch) return;
    while (this.changed.size) {
      const ids = [...this.changed];
      this.changed.clear();
      for (const id of ids) {
        const m = await store.matrix(id);
        if (epoch !== this.epoch) return;
        if (m) {
          const { codes, residuals } = this.encode(next.trained, m);
          next.codes.add(id, codes, residuals);
        } else {
          next.codes.remove(id);
        }
      }
    }
    // What it encoded and then saw change is dead in it: none of that is carried into service.
    next.codes.pack();
    this.setCurrent(next);
  }

  /**
   * A (re)training into a code store, run exclusively across contexts: the new generation's codec
   * and codes are stored beside the current one in batches, then ONE transaction encodes what
   * changed meanwhile and makes it current. A page closed before that leaves the old generation
   * current (the next open drops the leftovers).
   */
  private async trainStored(store: VectorStore, cs: CodeStore, tokens: number, background: boolean, epoch: number): Promise<void> {
    await cs.dropLeftovers().catch(() => undefined);
    // Tags before rows: a document written in between is newer than its tag, so the switch encodes it again.
    const tags = await cs.codeTags();
    const next = await this.train(store, tokens, background);
    if (epoch !== this.epoch) return;
    this.trainingsRun++;
    try {
      await this.persistGeneration(next, cs, tags, background, epoch);
    } catch (err) {
      if (!isColbertError(err) || (err.code !== 'QUOTA_EXCEEDED' && err.code !== 'STORAGE_FAILED')) throw err;
      // Storing the new generation failed (a full quota): serve it from memory, as without
      // IndexedDB; the stored generation, if any, stays as it was, and its leftovers go on the next open.
      if (this.current === next) return;
      next.id = 0;
      // Codes at least as new as these tags (read before the rows): a later sync re-encodes what differs.
      next.tags = new Map([...tags].filter(([id]) => next.codes.has(id)));
      await this.adoptInMemory(next, store, epoch);
    }
  }

  /** Stores a trained generation in batches and switches to it (see {@link trainStored}). */
  private async persistGeneration(next: Generation, cs: CodeStore, tags: ReadonlyMap<string, string>, background: boolean, epoch: number): Promise<void> {
    const pause = background ? nextTick : async () => undefined;
    const generation = await cs.beginGeneration(persisted(next.trained, this.options.poolFactor));
    next.id = generation;
    const have = new Map<string, string>();
    let batch = new Map<string, TaggedCodes>();
    let batchTokens = 0;
    for (const [id, tag] of tags) {
      const c: DocCodes | undefined = next.codes.document(id);
      if (!c) continue;
      batch.set(id, { tag, ...c });
      have.set(id, tag);
      batchTokens += c.codes.length;
      if (batchTokens >= WRITE_TOKENS) {
        await cs.writeGenerationCodes(generation, batch);
        batch = new Map();
        batchTokens = 0;
        await pause();
        if (epoch !== this.epoch) return;
      }
    }
    await cs.writeGenerationCodes(generation, batch);
    if (epoch !== this.epoch) return;
    for (const id of [...next.codes.storedIds()]) if (!have.has(id)) next.codes.remove(id);
    next.tags = have;
    await cs.switchGeneration(generation, have, this.encoderFor(next), (added, removed) => {
      for (const [id, c] of added) {
        next.codes.add(id, c.codes, c.residuals);
        next.tags.set(id, c.tag);
        this.recent.delete(id);
      }
      for (const id of removed) {
        next.codes.remove(id);
        next.tags.delete(id);
      }
      // Inside the store's write lock: no write lands between the flip and this.
      if (epoch !== this.epoch) return;
      next.codes.pack();
      this.setCurrent(next);
      this.bound = cs;
      this.changed.clear();
    });
  }

  /** Trains a codec on a sample of the store's live tokens and encodes every document. */
  private async train(store: VectorStore, tokens: number, background: boolean): Promise<Generation> {
    const pause = background ? nextTick : async () => undefined;
    // Two passes over the shards (sample, then encode), each holding one shard at a time: a store
    // with rows on demand reads them from IndexedDB segment by segment.
    const shards = () => store.shards();
    const dim = store.dim ?? 0;
    const { tokens: live, documents } = await store.stats();
    const count = Math.min(centroidCountFor(live), live);
    const sample = sampleRows(live, Math.min(count * SAMPLE_PER_CENTROID, MAX_TRAIN_SAMPLE), seededRandom(this.seed));
    // Gather the sampled live rows (decoded) in one pass.
    const data = new Float32Array(sample.length * dim);
    let row = 0;
    let next = 0;
    for await (const s of shards()) {
      if (next >= sample.length) break;
      for (let i = 0; i < s.docIds.length && next < sample.length; i++) {
        if (s.docIds[i] === null) continue;
        const from = s.offsets[i]!;
        const n = s.offsets[i + 1]! - from;
        while (next < sample.length && sample[next]! < row + n) {
          data.set(decodeRows(s, from + sample[next]! - row, 1, dim), next * dim);
          next++;
        }
        row += n;
      }
    }
    const trained = await trainCodec(data, sample.length, dim, { nbits: this.options.nbits, centroids: count, seed: this.seed, samplePerCentroid: Infinity, yieldEvery: pause });
    trained.trainedTokens = tokens;
    const codes = new CodeSet(residualBytes(dim, this.options.nbits), centroidCount(trained.codec));
    codes.reserve(live, documents);
    let since = 0;
    for await (const s of shards()) {
      for (let i = 0; i < s.docIds.length; i++) {
        const id = s.docIds[i];
        if (id === null || id === undefined) continue;
        const from = s.offsets[i]!;
        const n = s.offsets[i + 1]! - from;
        const m: TokenMatrix = { data: decodeRows(s, from, n, dim), tokens: n, dim, ids: new Int32Array(n) };
        const enc = this.encode(trained, m);
        codes.add(id, enc.codes, enc.residuals);
        since += n;
        if (since >= YIELD_TOKENS) {
          since = 0;
          await pause();
        }
      }
    }
    return { trained, codes, id: 0, tags: new Map() };
  }

  /**
   * The best `k` documents for a query from the codes (see the module comment). `exact` scores
   * the given documents from full vectors (the engine's scorer over the store's rows). With
   * rerank, `prefetch` is told, before the residual stage runs, the ids most likely to be given
   * to `exact` (the best survivors by centroid interaction), so that their rows can be read
   * meanwhile; it is a hint only: `exact` alone decides the scores. The stages run on the GPU
   * when {@link setGpu} gave them one, else on the CPU kernels; a GPU failure answers this query
   * and every later one on the CPU (see {@link stats}).
   */
  async search(query: TokenMatrix, k: number, options: CompressedSearchOptions, exact: (ids: string[]) => Promise<Scored[]>, prefetch?: (ids: string[]) => void): Promise<Scored[]> {
    const g = this.current;
    if (!g) throw new ColbertError('INTERNAL', 'The compressed index is not trained yet.');
    const gpu = this.gpu;
    if (gpu && this.gpuFailure === undefined) {
      try {
        // Undefined when the codes were renumbered under the query: the CPU answers it.
        const found = await this.searchOn(gpu, g, query, k, options, exact, prefetch);
        if (found) return found;
      } catch (err) {
        if ((err as Error | null)?.name !== 'GpuScoringError') throw err;
        this.gpuFailure = (err as Error).message;
        gpu.dispose();
      }
    }
    return (await this.searchOn(this.cpu, g, query, k, options, exact, prefetch))!;
  }

  /** {@link search} on one device's stages; undefined when they no longer match the codes. */
  private async searchOn(stages: CompressedStages, g: Generation, query: TokenMatrix, k: number, options: CompressedSearchOptions, exact: (ids: string[]) => Promise<Scored[]>, prefetch: ((ids: string[]) => void) | undefined): Promise<Scored[] | undefined> {
    const { codec } = g.trained;
    const codes = g.codes;
    const defaults = defaultKnobs(codes.tokens, k);
    const nprobe = Math.max(1, Math.floor(options.nprobe ?? defaults.nprobe));
    const keep = Math.max(k, Math.floor(options.candidates ?? defaults.candidates));
    const depth = Math.max(k, Math.floor(options.rerankDepth ?? defaults.rerankDepth));
    const count = centroidCount(codec);
    const allowed = options.allowed;
    const accept = allowed ? (slot: number) => allowed(codes.id(slot)!) : undefined;
    const rerank = options.rerank ?? this.options.rerank;
    const stageMs: CompressedTrace['stageMs'] = {};
    let t = performance.now();
    const lap = (stage: keyof CompressedTrace['stageMs']) => {
      const now = performance.now();
      stageMs[stage] = (stageMs[stage] ?? 0) + now - t;
      t = now;
    };
    const run = await stages.begin(query, codec, codes);
    lap('centroids');
    let rescore: string[];
    try {
      // Candidates, their ids and the codes' view are taken in one synchronous step after the
      // probes: a change to the codes between awaits (an add, a compaction) never mixes numberings.
      const gather = async (probe: number) => {
        const probes = await run.probes(probe);
        lap('probes');
        if (!run.current()) return undefined;
        const bound = run.slots;
        const docs = candidateSlots(codes.invertedLists(), probes, codes.slots, (s) => s < bound && codes.live(s), accept);
        const found = { docs, ids: Array.from(docs, (slot) => codes.id(slot)!), view: codes.view() };
        lap('union');
        return found;
      };
      let probe = nprobe;
      let found = await gather(probe);
      // Too few candidates (a narrow filter, a tiny index): probe wider, up to every centroid.
      while (found && found.docs.length < k && probe < count) {
        probe = Math.min(count, probe * 4);
        found = await gather(probe);
      }
      if (!found) return undefined;
      const { view } = found;
      let { docs, ids } = found;
      const trace: CompressedTrace = { device: stages.device, nprobe: probe, candidates: ids, survivors: ids, residual: false, rescored: 0, prefetched: 0, stageMs };
      this.trace = trace;
      if (docs.length > keep) {
        const best = await run.interactionTop(docs, view, keep);
        const allIds = ids;
        // The rows most likely reranked, asked for now so that they are read while the residual stage runs.
        if (prefetch && rerank && best.length > depth) {
          const likely = Array.from(best.subarray(0, Math.min(best.length, Math.ceil(depth * PREFETCH_PER_RERANK))), (i) => allIds[i]!);
          prefetch(likely);
          trace.prefetched = likely.length;
        }
        const kept = Uint32Array.from(best).sort();
        const all = docs;
        docs = Uint32Array.from(kept, (i) => all[i]!);
        ids = Array.from(kept, (i) => allIds[i]!);
        trace.survivors = ids;
        lap('interaction');
      }
      // When every survivor fits in the rerank there is nothing for the residual stage to prune.
      if (rerank && docs.length <= depth) {
        rescore = ids;
      } else {
        trace.residual = true;
        const rs = await run.residual(docs, view);
        lap('residual');
        const order = topIndexes(rs, rerank ? depth : docs.length);
        if (!rerank) {
          const ranked: Scored[] = Array.from(order, (i) => ({ id: ids[i]!, score: rs[i]! }));
          ranked.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
          return ranked.slice(0, k);
        }
        rescore = Array.from(order, (i) => ids[i]!);
      }
      trace.rescored = rescore.length;
    } finally {
      run.release();
    }
    const out = await exact(rescore);
    lap('rerank');
    return out;
  }

  /**
   * Runs the stages on the GPU (`stages`), or records why they cannot (`reason`, with `stages`
   * undefined): the engine calls it once, after choosing where its scorer runs.
   */
  setGpu(stages: CompressedStages | undefined, reason?: string): void {
    this.gpu?.dispose();
    this.gpu = stages;
    this.gpuFailure = undefined;
    this.noGpuReason = reason;
  }

  /** Where the stages run now, and why not on the GPU when they do not. */
  scoring(): { device: StageDevice; fallbackReason?: string } {
    const unusable = this.gpuFailure === undefined ? this.gpu?.unusableReason?.() : undefined;
    if (this.gpu && this.gpuFailure === undefined && unusable === undefined) return { device: 'webgpu' };
    const reason = this.gpuFailure ?? unusable ?? this.noGpuReason;
    return reason === undefined ? { device: 'cpu' } : { device: 'cpu', fallbackReason: reason };
  }

  /** @internal The last query's device, probes, candidates and survivors of centroid interaction (tests, diagnostics). */
  get lastQuery(): Readonly<CompressedTrace> | undefined {
    return this.trace;
  }

  /** @internal The GPU stages, when set (tests read their residency). */
  get gpuStages(): CompressedStages | undefined {
    return this.gpu;
  }
}
