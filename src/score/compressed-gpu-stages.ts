/**
 * The compressed search's stages on WebGPU (./compressed-stages.ts), on the scoring device of the
 * engine's GPU scorer: query x centroids, the probed centroids, centroid interaction (with its
 * top-k on the GPU) and residual MaxSim run in WGSL (./compressed-gpu.ts, ./compressed.wgsl) over a
 * GPU copy of the codes; candidate generation from the inverted lists, filters and the rerank
 * stay where they are (../compression.ts, the engine's scorer).
 *
 * The GPU copy follows the codes (../store/codes.ts) slot for slot: a GPU document number is a
 * slot. Each query first sends the slots added since the last one (deleted slots cost nothing:
 * they are never candidates), and rebuilds the copy from scratch when the slots were renumbered
 * (a compaction), when the codes are another generation's (a re-training swapped them) or when
 * the device changed. Queries run one at a time here, so a copy is never rebuilt under a query
 * that scores it. Any GPU failure rejects with `GpuScoringError` (the caller answers on the CPU);
 * this module loads ./compressed-gpu.ts (and its WGSL) only when a query first needs it.
 */
import type { CodeSet } from '../store/codes.ts';
import type { ResidualCodec } from '../store/residual.ts';
import type { TokenMatrix } from '../types.ts';
import { probeCentroids } from './compressed.ts';
import type { CompressedGpuIndex, CompressedGpuOptions, CompressedGpuResidency } from './compressed-gpu.ts';
import type { CompressedStages, QueryStages } from './compressed-stages.ts';

/** Where the GPU stages find their device: the engine's scorer while it runs on the GPU. */
export interface GpuDeviceSource {
  /** The scoring device, or undefined once scoring left the GPU. */
  device(): GPUDevice | undefined;
  /** Why scoring left the GPU, when it did. */
  reason(): string | undefined;
}

/** The GPU copy of one generation's codes. */
interface Mirror {
  index: CompressedGpuIndex;
  device: GPUDevice;
  codes: CodeSet;
  codec: ResidualCodec;
  /** `codes.compactions` when slots were last sent: a different value means renumbered slots. */
  compactions: number;
  /** Slots sent so far (GPU documents). */
  sent: number;
}

/** What the GPU copy holds and has cost (tests, diagnostics). */
export interface GpuStagesStats extends CompressedGpuResidency {
  /** Times the copy was built from scratch (first query, compaction, re-training, new device). */
  builds: number;
  /** Queries begun on the GPU. */
  queries: number;
}

type GpuModule = typeof import('./compressed-gpu.ts');

/** The compressed stages on WebGPU. */
export class GpuCompressedStages implements CompressedStages {
  readonly device = 'webgpu' as const;
  private mirror: Mirror | undefined;
  private module: Promise<GpuModule> | undefined;
  /** Settles when the query (or drop) in progress is done: the next one waits for it. */
  private lock: Promise<void> = Promise.resolve();
  private disposed = false;
  private builds = 0;
  private queries = 0;

  constructor(
    private readonly source: GpuDeviceSource,
    private readonly options: CompressedGpuOptions = {},
  ) {}

  /** Runs `body` after everything queued before it; `body` returns its own release. */
  private exclusive(): Promise<() => void> {
    let unlock!: () => void;
    const before = this.lock;
    this.lock = new Promise<void>((resolve) => (unlock = resolve));
    return before.then(() => unlock);
  }

  async begin(query: TokenMatrix, codec: ResidualCodec, codes: CodeSet): Promise<QueryStages> {
    const unlock = await this.exclusive();
    try {
      return await this.beginNow(query, codec, codes, unlock);
    } catch (err) {
      unlock();
      throw err;
    }
  }

  private async beginNow(query: TokenMatrix, codec: ResidualCodec, codes: CodeSet, unlock: () => void): Promise<QueryStages> {
    const lib = await (this.module ??= import('./compressed-gpu.ts'));
    if (this.disposed) throw new lib.GpuScoringError('the compressed GPU stages were disposed');
    const device = this.source.device();
    if (!device) throw new lib.GpuScoringError(`scoring left the GPU (${this.source.reason() ?? 'no reason given'})`);
    let m = this.mirror;
    if (m && (m.device !== device || m.codes !== codes || m.codec !== codec || m.compactions !== codes.compactions || codes.slots < m.sent)) {
      m.index.destroy();
      m = this.mirror = undefined;
    }
    if (!m) {
      const index = await lib.CompressedGpuIndex.create(device, codec, this.options);
      m = this.mirror = { index, device, codes, codec, compactions: codes.compactions, sent: 0 };
      this.builds++;
    }
    // From the check above (or the new copy's numbering) to the append, nothing awaits: the
    // slots sent and `compactions` describe one numbering of the codes.
    const appended = this.sendNew(m, codes);
    const mirror = m;
    const { index } = mirror;
    const slots = mirror.sent;
    const compactions = mirror.compactions;
    await appended;
    const s = await index.centroidScores(query);
    this.queries++;
    let all: Float32Array | undefined;
    let released = false;
    return {
      slots,
      current: () => this.mirror === mirror && codes.compactions === compactions,
      async probes(nprobe) {
        if (nprobe <= lib.MAX_GPU_PROBE) return index.topCentroids(s, nprobe);
        // Wider than the shader selects (a narrow filter widening the probes): rank all of S here.
        all ??= await index.readCentroidScores(s);
        return probeCentroids(all, s.queryTokens, s.centroids, nprobe);
      },
      async interactionTop(docs, _view, keep) {
        return (await index.rankCandidates('interaction', s, docs, keep)).positions;
      },
      residual: (docs) => index.residualScores(s, docs),
      release() {
        if (released) return;
        released = true;
        s.release();
        unlock();
      },
    };
  }

  /** Appends the slots of `codes` the copy lacks (a deleted slot as an empty document); synchronous up to the GPU write. */
  private sendNew(m: Mirror, codes: CodeSet): Promise<unknown> {
    const from = m.sent;
    const to = codes.slots;
    if (to <= from) return Promise.resolve();
    const view = codes.view();
    const bytes = codes.bytesPerToken;
    const tokenCounts = new Uint32Array(to - from);
    let tokens = 0;
    for (let s = from; s < to; s++) tokens += tokenCounts[s - from] = view.counts[s]!;
    const ids = new Uint32Array(tokens);
    const residuals = new Uint8Array(tokens * bytes);
    let at = 0;
    for (let s = from; s < to; s++) {
      const start = view.starts[s]!;
      const n = view.counts[s]!;
      if (n === 0) continue;
      ids.set(view.codes.subarray(start, start + n), at);
      residuals.set(view.residuals.subarray(start * bytes, (start + n) * bytes), at * bytes);
      at += n;
    }
    m.sent = to;
    return m.index.append({ codes: ids, residuals, tokenCounts });
  }

  unusableReason(): string | undefined {
    if (this.disposed) return 'the compressed GPU stages were disposed';
    if (!this.source.device()) return `scoring left the GPU (${this.source.reason() ?? 'no reason given'})`;
    return this.mirror?.index.unusableReason;
  }

  /** What the GPU copy holds (undefined before the first query or after a drop). */
  stats(): GpuStagesStats | undefined {
    const m = this.mirror;
    return m ? { ...m.index.residency(), builds: this.builds, queries: this.queries } : undefined;
  }

  drop(): void {
    void this.exclusive().then((unlock) => {
      this.mirror?.index.destroy();
      this.mirror = undefined;
      unlock();
    });
  }

  dispose(): void {
    this.disposed = true;
    this.drop();
  }
}
