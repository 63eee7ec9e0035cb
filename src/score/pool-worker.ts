/**
 * The sub-worker side of multithreaded CPU MaxSim (./pool.ts is the other side): it loads the
 * same kernel as the calling thread (./simd.ts, same options, so scores are bit-identical), keeps
 * the shards' SharedArrayBuffers it was sent (by shard key, never copied), and for each query
 * scores the document ranges it is given straight into a shared scores array.
 *
 * This module must not import ./pool.ts (which starts these workers): a bundler would then put
 * the worker inside its own worker.
 */
import { packedArray, type PackedVectors, type VectorPrecision } from '../store/precision.ts';
import type { ShardView } from '../store/types.ts';
import type { TokenMatrix } from '../types.ts';
import { loadMaxSimKernel, type KernelOptions } from './simd.ts';

/** First message: the kernel to use for every query (the calling thread's own options). */
export interface PoolInit {
  type: 'init';
  kernel: KernelOptions;
  /** Vector dimension of the index, to compile the kernel up front. */
  dim: number;
}

/** A shard's storage, sent once per key (again only when its buffer was replaced by growth). */
export interface ResidentShard {
  key: string;
  precision: VectorPrecision;
  /** The whole SharedArrayBuffer of the packed vectors (rows past the live ones are unused). */
  vectors: SharedArrayBuffer;
  /** int8 only: the SharedArrayBuffer of the per-row scales. */
  scales?: SharedArrayBuffer;
}

/** Documents `[first, first + deleted.length)` of one shard to score. */
export interface ScoreTask {
  key: string;
  dim: number;
  /** The documents' offsets (absolute rows of the shard), one more than documents. */
  offsets: Uint32Array;
  /** 1 for a deleted document (scored -Infinity). */
  deleted: Uint8Array;
  /** Where in the shared scores array the first document's score goes. */
  out: number;
}

/** One query for one sub-worker. */
export interface PoolQuery {
  type: 'score';
  id: number;
  query: TokenMatrix;
  /** Scores of every document of the query, shared by all threads (each writes its own ranges). */
  scores: Float32Array;
  /** Shards this worker does not hold yet (or holds with an outgrown buffer). */
  resident: ResidentShard[];
  /** Keys that no longer exist: forget their buffers. */
  drop: string[];
  tasks: ScoreTask[];
}

/** What a sub-worker answers. */
export type PoolReply = { type: 'ready'; kernel: string } | { type: 'done'; id: number } | { type: 'error'; id?: number; message: string };

/** The part of a worker's global scope this needs. */
export interface PoolScope {
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: PoolReply): void;
}

/** Serves MaxSim requests in this worker. Call once at the top of the worker module. */
export function serveMaxSim(scope: PoolScope): void {
  const shards = new Map<string, { precision: VectorPrecision; vectors: PackedVectors; scales?: Float32Array }>();
  let kernelOptions: KernelOptions = {};
  // Messages are handled strictly in order (the kernel load is asynchronous).
  let queue = Promise.resolve();
  const handle = async (message: PoolInit | PoolQuery): Promise<void> => {
    if (message.type === 'init') {
      kernelOptions = message.kernel;
      scope.postMessage({ type: 'ready', kernel: (await loadMaxSimKernel(message.dim, kernelOptions)).name });
      return;
    }
    try {
      for (const key of message.drop) shards.delete(key);
      for (const r of message.resident) {
        const held: { precision: VectorPrecision; vectors: PackedVectors; scales?: Float32Array } = { precision: r.precision, vectors: packedArray(r.precision, r.vectors) };
        if (r.scales) held.scales = new Float32Array(r.scales);
        shards.set(r.key, held);
      }
      const kernel = await loadMaxSimKernel(message.query.dim, kernelOptions);
      for (const task of message.tasks) {
        const held = shards.get(task.key);
        if (!held) throw new Error(`shard ${task.key} was never sent to this worker`);
        const docIds: (string | null)[] = Array.from(task.deleted, (d) => (d ? null : ''));
        const view: ShardView = { key: task.key, dim: task.dim, precision: held.precision, vectors: held.vectors, offsets: task.offsets, docIds };
        if (held.scales) view.scales = held.scales;
        kernel.scoreShard(message.query, view, message.scores.subarray(task.out, task.out + docIds.length));
      }
      scope.postMessage({ type: 'done', id: message.id });
    } catch (err) {
      scope.postMessage({ type: 'error', id: message.id, message: (err as Error).message });
    }
  };
  scope.onmessage = (event: MessageEvent) => {
    queue = queue.then(() => handle(event.data as PoolInit | PoolQuery)).catch((err: unknown) => scope.postMessage({ type: 'error', message: (err as Error).message }));
  };
}
