/**
 * The compressed, candidate-generating index (PLAID style) as the engine runs it: it trains a codec
 * from the store's own vectors (../score/train.ts), keeps every document as centroid codes and
 * residuals (./store/codes.ts), and answers a query in four stages (../score/compressed.ts):
 *
 * 1. query x centroids; per query token its `nprobe` best centroids;
 * 2. candidates: the union of those centroids' inverted lists (live, allowed documents only);
 * 3. centroid interaction prunes them to `candidates` documents;
 * 4. with rerank, the best `rerankDepth` of those (all of them by default) are scored from the
 *    store's full-precision vectors by the engine's MaxSim scorer, so their scores are exactly the
 *    exhaustive ones; when rerankDepth is smaller, or without rerank, they are first scored from
 *    their residuals.
 *
 * The stages of 1-3 and the residual scoring run on the CPU kernels, or in WGSL on the engine's
 * GPU scoring device when MaxSim runs there (../score/compressed-stages.ts and
 * ../score/compressed-gpu-stages.ts), through one search flow, so both give the same candidates.
 *
 * Like ./engine.ts this module knows store/ and score/; it never imports model/.
 */
import { ColbertError } from './errors.ts';
import { simdCompressedKernels } from './score/centroid-simd.ts';
import { candidateSlots, topIndexes, type CompressedKernels } from './score/compressed.ts';
import { cpuStages, type CompressedStages, type StageDevice } from './score/compressed-stages.ts';
import { assignCodes, centroidCountFor, MIN_TRAIN_TOKENS, sampleRows, seededRandom, trainCodec, type TrainedCodec } from './score/train.ts';
import type { Scored } from './score/topk.ts';
import { CodeSet } from './store/codes.ts';
import { POOL_FACTORS } from './store/pooling.ts';
import { decodeRows } from './store/precision.ts';
import { centroidCount, encodeResidual, RESIDUAL_BITS, residualBytes, type ResidualBits } from './store/residual.ts';
import type { ShardView, VectorStore } from './store/types.ts';
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
 * Knob defaults: wider probes for small indexes, where every list is short; and, as PLAID's
 * `ndocs` (256 for k <= 10), at least 256 survivors of centroid interaction, 16 per hit beyond,
 * and one per 16,384 tokens in large indexes (on the synthetic 10M-token set, with about 10,000
 * candidates, 0.960 of the exhaustive top 10 survive among 256, 1.000 among 512).
 * Measured with `bench/compressed-stages.ts` (recall of the exhaustive top 10 after each stage):
 * on Cranfield (contextual test model, 261k tokens) the inverted lists hold every relevant
 * document already, and it is centroid interaction that drops them: 0.94 of the exhaustive top
 * 10 survive among 64 documents, 0.98 among 128, 0.999 among 256. Decoding residuals in
 * JavaScript costs more per document than the exact score on the WASM kernel, so with rerank
 * every survivor is rescored exactly (rerankDepth = candidates) and the residual stage only
 * serves `rerank: false` or a smaller rerankDepth.
 */
export function defaultKnobs(tokens: number, k: number): Required<Pick<CompressedSearchOptions, 'nprobe' | 'candidates' | 'rerankDepth'>> {
  const nprobe = tokens < 262_144 ? 4 : tokens < 4_194_304 ? 3 : 2;
  const candidates = Math.max(256, 16 * k, Math.ceil(tokens / 16_384));
  return { nprobe, candidates, rerankDepth: candidates };
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
  /** Resident bytes of codes, residuals, centroids, buckets, slots and inverted lists (ids excluded). */
  codeBytes: number;
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
}

/** Tokens encoded between yields while (re)training in the background. */
const YIELD_TOKENS = 2048;
/** Most tokens k-means trains on (8 per centroid below that); every token is then assigned in one pass. */
export const MAX_TRAIN_SAMPLE = 262_144;
/** Re-train once the index holds this many times the tokens its centroids were trained for. */
export const RETRAIN_GROWTH = 4;

const nextTick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** One trained generation: codec + codes. */
interface Generation {
  trained: TrainedCodec;
  codes: CodeSet;
}

/** The compressed index of one engine. */
export class CompressedIndex {
  private current: Generation | null = null;
  private training: Promise<void> | null = null;
  /** Ids changed while a (re)training runs: re-encoded into the new generation before it is swapped in. */
  private changed = new Set<string>();
  private epoch = 0;
  private failure: unknown = undefined;
  /** The stages on the CPU kernels, and on the GPU when the engine's scorer runs there ({@link setGpu}). */
  private readonly cpu: CompressedStages;
  private gpu: CompressedStages | undefined;
  /** Why the GPU stages failed (searches then run on the CPU). */
  private gpuFailure: string | undefined;
  /** Why no GPU stages were given, when the engine says. */
  private noGpuReason: string | undefined;
  private trace: CompressedTrace | undefined;

  constructor(
    readonly options: ResolvedCompression,
    kernels: CompressedKernels = simdCompressedKernels,
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
      codeBytes: g ? g.codes.bytes() + (codec!.centroids.length + codec!.cutoffs.length + codec!.weights.length) * 4 : 0,
      scoringDevice: where.device,
    };
    if (where.fallbackReason !== undefined) stats.scoringFallbackReason = where.fallbackReason;
    return stats;
  }

  /** Resolves when no training runs (rethrowing a failure of the last one). */
  async settled(): Promise<void> {
    while (this.training) await this.training;
    if (this.failure !== undefined) {
      const err = this.failure;
      this.failure = undefined;
      throw err;
    }
  }

  /** Forgets everything (clear, import): the next {@link update} trains again from the store. */
  reset(): void {
    this.epoch++;
    this.current = null;
    this.training = null;
    this.changed.clear();
    this.gpu?.drop();
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
    for (const id of [...changedIds, ...removedIds]) if (this.training) this.changed.add(id);
    const g = this.current;
    if (g) {
      for (const id of removedIds) g.codes.remove(id);
      for (const id of changedIds) {
        const m = await store.matrix(id);
        if (m) {
          const { codes, residuals } = this.encode(g.trained, m);
          g.codes.add(id, codes, residuals);
        } else {
          g.codes.remove(id);
        }
      }
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

  /** Opening an existing index: trains from what the store holds (awaited). */
  async open(store: VectorStore): Promise<void> {
    const { tokens } = await store.stats();
    if (tokens >= MIN_TRAIN_TOKENS) {
      this.startTraining(store, tokens, false);
      await this.settled();
    }
  }

  /** Another context changed the store: forget the codes and train again from what it holds (searches are exhaustive meanwhile). */
  async resync(store: VectorStore): Promise<void> {
    this.reset();
    await this.open(store);
  }

  private startTraining(store: VectorStore, tokens: number, background: boolean): void {
    const epoch = this.epoch;
    this.changed.clear();
    const run = (async () => {
      const next = await this.train(store, tokens, background);
      if (epoch !== this.epoch) return;
      // Bring in what changed while training ran, then swap in one step.
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
      this.current = next;
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

  /** Trains a codec on a sample of the store's live tokens and encodes every document. */
  private async train(store: VectorStore, tokens: number, background: boolean): Promise<Generation> {
    const pause = background ? nextTick : async () => undefined;
    const shards: ShardView[] = [];
    for await (const s of store.shards()) shards.push(s);
    const dim = store.dim ?? shards[0]?.dim ?? 0;
    const live = shards.reduce((n, s) => n + s.docIds.reduce((m, id, i) => m + (id === null ? 0 : s.offsets[i + 1]! - s.offsets[i]!), 0), 0);
    const count = Math.min(centroidCountFor(live), live);
    const sample = sampleRows(live, Math.min(count * 8, MAX_TRAIN_SAMPLE), seededRandom(this.seed));
    // Gather the sampled live rows (decoded) in one pass.
    const data = new Float32Array(sample.length * dim);
    let row = 0;
    let next = 0;
    for (const s of shards) {
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
    let since = 0;
    for (const s of shards) {
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
    return { trained, codes };
  }

  /**
   * The best `k` documents for a query from the codes (see the module comment). `exact` scores
   * the given documents from full vectors (the engine's scorer over the store's rows). The
   * stages run on the GPU when {@link setGpu} gave them one, else on the CPU kernels; a GPU
   * failure answers this query and every later one on the CPU (see {@link stats}).
   */
  async search(query: TokenMatrix, k: number, options: CompressedSearchOptions, exact: (ids: string[]) => Promise<Scored[]>): Promise<Scored[]> {
    const g = this.current;
    if (!g) throw new ColbertError('INTERNAL', 'The compressed index is not trained yet.');
    const gpu = this.gpu;
    if (gpu && this.gpuFailure === undefined) {
      try {
        // Undefined when the codes were renumbered under the query: the CPU answers it.
        const found = await this.searchOn(gpu, g, query, k, options, exact);
        if (found) return found;
      } catch (err) {
        if ((err as Error | null)?.name !== 'GpuScoringError') throw err;
        this.gpuFailure = (err as Error).message;
        gpu.dispose();
      }
    }
    return (await this.searchOn(this.cpu, g, query, k, options, exact))!;
  }

  /** {@link search} on one device's stages; undefined when they no longer match the codes. */
  private async searchOn(stages: CompressedStages, g: Generation, query: TokenMatrix, k: number, options: CompressedSearchOptions, exact: (ids: string[]) => Promise<Scored[]>): Promise<Scored[] | undefined> {
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
    const run = await stages.begin(query, codec, codes);
    let rescore: string[];
    try {
      // Candidates, their ids and the codes' view are taken in one synchronous step after the
      // probes: a change to the codes between awaits (an add, a compaction) never mixes numberings.
      const gather = async (probe: number) => {
        const probes = await run.probes(probe);
        if (!run.current()) return undefined;
        const bound = run.slots;
        const docs = candidateSlots(codes.invertedLists(), probes, codes.slots, (s) => s < bound && codes.live(s), accept);
        return { docs, ids: Array.from(docs, (slot) => codes.id(slot)!), view: codes.view() };
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
      const trace: CompressedTrace = { device: stages.device, nprobe: probe, candidates: ids, survivors: ids, residual: false };
      this.trace = trace;
      if (docs.length > keep) {
        const kept = Uint32Array.from(await run.interactionTop(docs, view, keep)).sort();
        const all = docs;
        const allIds = ids;
        docs = Uint32Array.from(kept, (i) => all[i]!);
        ids = Array.from(kept, (i) => allIds[i]!);
        trace.survivors = ids;
      }
      // Exact scores from the stored vectors (the WASM kernel) cost less than decoding residuals
      // in JavaScript, so when every survivor fits in the rerank the residual stage is skipped.
      if (rerank && docs.length <= depth) {
        rescore = ids;
      } else {
        trace.residual = true;
        const rs = await run.residual(docs, view);
        const order = topIndexes(rs, rerank ? depth : docs.length);
        if (!rerank) {
          const ranked: Scored[] = Array.from(order, (i) => ({ id: ids[i]!, score: rs[i]! }));
          ranked.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
          return ranked.slice(0, k);
        }
        rescore = Array.from(order, (i) => ids[i]!);
      }
    } finally {
      run.release();
    }
    return exact(rescore);
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
