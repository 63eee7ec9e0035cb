/**
 * MaxSim on several CPU threads: the calling thread plus a pool of sub-workers
 * (workers/maxsim.worker.ts, logic in ./pool-worker.ts), used only where the realm is
 * cross-origin isolated and the store keeps its shards in SharedArrayBuffers.
 *
 * - Nothing is held twice: a shard's buffers are posted to each worker once per shard key (again
 *   only when growth replaced the buffer) and dropped when the key disappears; per query only the
 *   small parts travel (query rows, offsets and a deleted mask of the worker's ranges).
 * - Work is split by rows, not documents ({@link splitWork}); every thread scores contiguous
 *   document ranges with the same kernel straight into one shared scores array, so every score is
 *   bit-identical to what the calling thread alone would compute.
 * - Failure is never a failed query: a worker that cannot start, reports an error, or does not
 *   answer in time makes {@link MaxSimPool.score} throw a {@link PoolFailure}, after which the pool
 *   is closed for good and the caller scores on its own thread.
 */
import type { ShardView } from '../store/types.ts';
import type { TokenMatrix } from '../types.ts';
import type { PoolInit, PoolQuery, PoolReply, ResidentShard, ScoreTask } from './pool-worker.ts';
import type { KernelOptions, MaxSimKernel } from './simd.ts';

/** Documents `[start, end)` of shard number `shard` (in the query's shard order). */
export interface WorkRange {
  shard: number;
  start: number;
  end: number;
}

/** What {@link splitWork} needs of a shard. */
export type Splittable = Pick<ShardView, 'offsets' | 'docIds'>;

/**
 * Splits the documents of `shards` into `parts` lists of contiguous ranges, in order, so that
 * every document is in exactly one range and each part holds about `1 / parts` of the live rows
 * (deleted documents weigh nothing): no part exceeds its share by more than one document's rows.
 * Parts may be empty (fewer documents than parts).
 */
export function splitWork(shards: readonly Splittable[], parts: number): WorkRange[][] {
  const out: WorkRange[][] = Array.from({ length: parts }, () => []);
  const rowsOf = (s: Splittable, d: number) => (s.docIds[d] === null ? 0 : s.offsets[d + 1]! - s.offsets[d]!);
  let total = 0;
  for (const s of shards) for (let d = 0; d < s.docIds.length; d++) total += rowsOf(s, d);
  let part = 0;
  let done = 0;
  shards.forEach((s, shard) => {
    let start = 0;
    for (let d = 0; d < s.docIds.length; d++) {
      // Part `part` ends once the rows before this document reach its share of the total.
      while (part < parts - 1 && done >= (total * (part + 1)) / parts) {
        if (d > start) out[part]!.push({ shard, start, end: d });
        start = d;
        part++;
      }
      done += rowsOf(s, d);
    }
    if (s.docIds.length > start) out[part]!.push({ shard, start, end: s.docIds.length });
  });
  return out;
}

/** Why the pool stopped: the caller scores on its own thread from then on. */
export class PoolFailure extends Error {
  override readonly name = 'PoolFailure';
}

/** Options of {@link MaxSimPool}. */
export interface PoolOptions {
  /** Sub-workers to start (the calling thread scores a share too). */
  workers: number;
  /** The calling thread's kernel options: the workers must run the very same kernel. */
  kernel: KernelOptions;
  /** Starts sub-worker `index`; default {@link spawnMaxSimWorker}. Tests inject failing ones here. */
  spawn?: (index: number) => Worker;
  /** How long workers may take to start and compile the kernel. Default 15 s. */
  startTimeoutMs?: number;
  /**
   * How long workers may take past the calling thread's own (equal) share before they count as
   * dead: `stallMs + 20 x` the calling thread's time. A terminated or killed worker sends no event,
   * so this is how one is noticed. Default 2 s.
   */
  stallMs?: number;
}

/**
 * Starts one MaxSim sub-worker. Bundlers (Vite, webpack 5) recognise exactly this form and emit
 * workers/maxsim.worker.ts as its own chunk.
 */
export function spawnMaxSimWorker(index: number): Worker {
  return new Worker(new URL('../../workers/maxsim.worker.ts', import.meta.url), { type: 'module', name: `colbert-web-maxsim-${index}` });
}

interface Member {
  worker: Worker;
  /** Shard key -> the vectors buffer this worker holds for it. */
  resident: Map<string, SharedArrayBuffer>;
  /** The reply being waited for. */
  waiting: ((reply: PoolReply) => void) | undefined;
}

function deadline<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new PoolFailure(what())), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** A lazily started pool of MaxSim sub-workers. Not re-entrant: queries go one at a time. */
export class MaxSimPool {
  private members: Member[] | undefined;
  private starting: Promise<Member[]> | undefined;
  /** Rejects the query in flight when a worker reports an error event. */
  private abort: ((failure: PoolFailure) => void) | undefined;
  private broken: PoolFailure | undefined;
  private scores = new Float32Array(new SharedArrayBuffer(0));
  private queryId = 0;

  constructor(private readonly options: PoolOptions) {}

  /** Sub-workers (the calling thread not counted). */
  get size(): number {
    return this.options.workers;
  }

  /**
   * Scores every document of `shards` (all SharedArrayBuffer-backed) on the calling thread and the
   * workers; returns one scores array per shard (deleted documents -Infinity), valid until the
   * next call. Throws {@link PoolFailure} when the workers cannot be used.
   */
  async score(query: TokenMatrix, shards: readonly ShardView[], kernel: MaxSimKernel): Promise<Float32Array[]> {
    if (this.broken) throw this.broken;
    try {
      return await this.run(query, shards, kernel);
    } catch (err) {
      const failure = err instanceof PoolFailure ? err : new PoolFailure(`a MaxSim sub-worker failed: ${(err as Error).message}`);
      this.close(failure);
      throw failure;
    }
  }

  private async run(query: TokenMatrix, shards: readonly ShardView[], kernel: MaxSimKernel): Promise<Float32Array[]> {
    const members = await this.start(shards[0]!.dim, kernel);
    const failed = new Promise<never>((_, reject) => (this.abort = reject));
    failed.catch(() => undefined);
    const firstSlot: number[] = [];
    let slots = 0;
    for (const s of shards) {
      firstSlot.push(slots);
      slots += s.docIds.length;
    }
    if (this.scores.length < slots) this.scores = new Float32Array(new SharedArrayBuffer(slots * 4 * 2));
    const scores = this.scores;
    const [mine, ...theirs] = splitWork(shards, members.length + 1);
    const live = new Set(shards.map((s) => s.key));
    const id = ++this.queryId;
    // Exactly the query's rows (a view into a larger buffer would be cloned whole to every worker).
    const rows: TokenMatrix = { data: query.data.slice(0, query.tokens * query.dim), tokens: query.tokens, dim: query.dim, ids: new Int32Array(0) };
    const replies = members.map((member, w) => {
      const ranges = theirs[w]!;
      const message: PoolQuery = { type: 'score', id, query: rows, scores, resident: [], drop: [], tasks: [] };
      for (const key of member.resident.keys()) {
        if (!live.has(key)) {
          member.resident.delete(key);
          message.drop.push(key);
        }
      }
      for (const { shard, start, end } of ranges) {
        const s = shards[shard]!;
        const vectors = s.vectors.buffer as SharedArrayBuffer;
        if (member.resident.get(s.key) !== vectors) {
          const resident: ResidentShard = { key: s.key, precision: s.precision, vectors };
          if (s.scales) resident.scales = s.scales.buffer as SharedArrayBuffer;
          message.resident.push(resident);
          member.resident.set(s.key, vectors);
        }
        const deleted = new Uint8Array(end - start);
        for (let d = start; d < end; d++) if (s.docIds[d] === null) deleted[d - start] = 1;
        const task: ScoreTask = { key: s.key, dim: s.dim, offsets: s.offsets.slice(start, end + 1), deleted, out: firstSlot[shard]! + start };
        message.tasks.push(task);
      }
      const reply = this.reply(member, w);
      member.worker.postMessage(message);
      return reply.then((r) => {
        if (r.type === 'error') throw new PoolFailure(`MaxSim sub-worker ${w + 1} failed: ${r.message}`);
        if (r.type !== 'done' || r.id !== id) throw new PoolFailure(`MaxSim sub-worker ${w + 1} answered out of turn`);
      });
    });
    // The calling thread's own share, while the workers score theirs.
    const t0 = performance.now();
    for (const { shard, start, end } of mine!) {
      const s = shards[shard]!;
      const part: ShardView = { ...s, offsets: s.offsets.subarray(start, end + 1), docIds: s.docIds.slice(start, end) };
      kernel.scoreShard(query, part, scores.subarray(firstSlot[shard]! + start, firstSlot[shard]! + end));
    }
    const ownMs = performance.now() - t0;
    const wait = (this.options.stallMs ?? 2000) + 20 * ownMs;
    await deadline(Promise.race([Promise.all(replies), failed]), wait, () => `a MaxSim sub-worker did not answer within ${Math.round(wait)} ms (terminated or killed?)`);
    this.abort = undefined;
    return shards.map((s, i) => scores.subarray(firstSlot[i]!, firstSlot[i]! + s.docIds.length));
  }

  /** The next reply of one member. */
  private reply(member: Member, index: number): Promise<PoolReply> {
    return new Promise<PoolReply>((resolve) => {
      member.waiting = (r) => {
        member.waiting = undefined;
        resolve(r);
      };
    }).then((r) => {
      if (r.type === 'error' && r.id === undefined) throw new PoolFailure(`MaxSim sub-worker ${index + 1} failed: ${r.message}`);
      return r;
    });
  }

  /** Starts the workers once and waits until each has compiled the calling thread's kernel. */
  private start(dim: number, kernel: MaxSimKernel): Promise<Member[]> {
    if (this.members) return Promise.resolve(this.members);
    this.starting ??= (async () => {
      const spawn = this.options.spawn ?? spawnMaxSimWorker;
      const members: Member[] = [];
      const failed = new Promise<never>((_, reject) => (this.abort = reject));
      failed.catch(() => undefined);
      for (let i = 0; i < this.options.workers; i++) {
        let worker: Worker;
        try {
          worker = spawn(i);
        } catch (err) {
          for (const m of members) m.worker.terminate();
          throw new PoolFailure(`MaxSim sub-workers could not be started: ${(err as Error).message}`);
        }
        const member: Member = { worker, resident: new Map(), waiting: undefined };
        worker.addEventListener('message', (event: MessageEvent) => member.waiting?.(event.data as PoolReply));
        const fail = (what: string) => (event: Event) => {
          const detail = (event as ErrorEvent).message;
          this.abort?.(new PoolFailure(`MaxSim sub-worker ${i + 1} ${what}${detail ? `: ${detail}` : ''}`));
        };
        worker.addEventListener('error', fail('failed to load or threw'));
        worker.addEventListener('messageerror', fail('could not read a message'));
        members.push(member);
      }
      // Assigned before waiting, so that close() terminates them even while they start.
      this.members = members;
      const ready = members.map((m, i) => {
        const reply = this.reply(m, i);
        const init: PoolInit = { type: 'init', kernel: this.options.kernel, dim };
        m.worker.postMessage(init);
        return reply.then((r) => {
          if (r.type !== 'ready') throw new PoolFailure(`MaxSim sub-worker ${i + 1} did not start: ${r.type === 'error' ? r.message : r.type}`);
          if (r.kernel !== kernel.name) throw new PoolFailure(`MaxSim sub-worker ${i + 1} runs the ${r.kernel} kernel, not ${kernel.name}: scores would differ`);
        });
      });
      const ms = this.options.startTimeoutMs ?? 15_000;
      await deadline(Promise.race([Promise.all(ready), failed]), ms, () => `MaxSim sub-workers did not start within ${ms} ms`);
      return members;
    })();
    return this.starting;
  }

  /** Terminates the workers; later calls throw `failure` (or say the pool was disposed). */
  close(failure = new PoolFailure('the MaxSim worker pool was disposed')): void {
    this.broken ??= failure;
    for (const m of this.members ?? []) m.worker.terminate();
    this.members = undefined;
    this.abort = undefined;
  }
}
