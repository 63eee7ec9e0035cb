/**
 * The compressed search's scoring stages for one query, on one device: the CPU kernels
 * (./compressed.ts, ./centroid-simd.ts) or the WGSL twins over a GPU copy of the codes
 * (./compressed-gpu-stages.ts). ../compression.ts runs the same search flow over either (query x
 * centroids, probes, candidates from the inverted lists, centroid interaction, residual MaxSim),
 * so both devices give the same candidates; only these stages differ.
 *
 * Stages name documents by slot of the codes (../store/codes.ts). A GPU copy of the codes may lag
 * behind them by the slots added since the query began ({@link QueryStages.slots}), and no longer
 * matches them once a compaction renumbered the slots ({@link QueryStages.current}).
 */
import type { CodeSet, CodeView } from '../store/codes.ts';
import { centroidCount, type ResidualCodec } from '../store/residual.ts';
import type { TokenMatrix } from '../types.ts';
import { centroidScoresSimd } from './centroid-simd.ts';
import { probeCentroids, topIndexes, type CompressedKernels } from './compressed.ts';
import { centroidInteractionSimd } from './interaction-simd.ts';
import { residualMaxSimSimd } from './residual-simd.ts';

/** Where the compressed stages run. */
export type StageDevice = 'webgpu' | 'cpu';

/** The stages of one query, begun by {@link CompressedStages.begin}; {@link release} when done. */
export interface QueryStages {
  /** Candidates must be slots below this (the slots the stages can score). */
  readonly slots: number;
  /** False once the codes were renumbered after the query began: its slots then mean other documents to these stages. */
  current(): boolean;
  /** Per query row its `nprobe` best centroids (row-major, ties to the lower centroid). */
  probes(nprobe: number): Promise<Uint32Array>;
  /** The `keep` best of `docs` by centroid interaction: positions into `docs`, best first, ties to the lower position. */
  interactionTop(docs: Uint32Array, view: CodeView, keep: number): Promise<Uint32Array>;
  /** Residual MaxSim of each of `docs`, in order. */
  residual(docs: Uint32Array, view: CodeView): Promise<Float32Array>;
  /** Frees what the query holds (GPU buffers) and lets the next query begin. */
  release(): void;
}

/** One device's stages. */
export interface CompressedStages {
  readonly device: StageDevice;
  /** Computes query x centroids for `codes` (encoded by `codec`) and returns the query's stages. */
  begin(query: TokenMatrix, codec: ResidualCodec, codes: CodeSet): Promise<QueryStages>;
  /** Why these stages cannot run any more (a lost device, scoring left the GPU), when known before a query fails. */
  unusableReason?(): string | undefined;
  /** Frees any resident copy of the codes (clear, import); the stages stay usable. */
  drop(): void;
  /** Frees everything; later {@link begin} calls fail. */
  dispose(): void;
}

/**
 * The CPU kernels the compressed index runs by default: WASM SIMD query x centroids
 * (./centroid-simd.ts), centroid interaction (./interaction-simd.ts) and residual MaxSim
 * (./residual-simd.ts), each falling back to plain JS (./compressed.ts) where SIMD is missing.
 */
export const wasmCompressedKernels: CompressedKernels = { centroidScores: centroidScoresSimd, centroidInteraction: centroidInteractionSimd, residualMaxSim: residualMaxSimSimd };

/** The stages on the CPU kernels given ({@link wasmCompressedKernels} by default in ../compression.ts). */
export function cpuStages(kernels: CompressedKernels): CompressedStages {
  return {
    device: 'cpu',
    async begin(query, codec) {
      const count = centroidCount(codec);
      const scores = kernels.centroidScores(query, codec);
      return {
        slots: Infinity,
        current: () => true,
        probes: async (nprobe) => probeCentroids(scores, query.tokens, count, nprobe),
        async interactionTop(docs, view, keep) {
          const ci = new Float32Array(docs.length);
          kernels.centroidInteraction(scores, query.tokens, count, view, docs, ci);
          return topIndexes(ci, keep);
        },
        async residual(docs, view) {
          const rs = new Float32Array(docs.length);
          kernels.residualMaxSim(query, codec, scores, view, docs, rs);
          return rs;
        },
        release: () => undefined,
      };
    },
    drop: () => undefined,
    dispose: () => undefined,
  };
}
