/**
 * How a scorer that scores many shards in one step (the thread pool, the GPU) walks a scan: the
 * shards the store holds are gathered and scored together at the end; those it reads for this
 * scan only (`transient`, rows on demand) are scored in batches as they come, so that a query
 * never holds all of them at once.
 */
import type { ShardView } from '../store/types.ts';

/**
 * Calls `score` with each batch of transient shards once their `size` reaches `limit`, then once
 * with the rest of them and every held shard (possibly none), in order. Errors of `shards` and of
 * `score` pass through.
 */
export async function scoreInBatches(
  shards: AsyncIterable<ShardView> | Iterable<ShardView>,
  limit: number,
  size: (shard: ShardView) => number,
  score: (views: ShardView[]) => Promise<void>,
): Promise<void> {
  const held: ShardView[] = [];
  let batch: ShardView[] = [];
  let total = 0;
  for await (const shard of shards) {
    if (!shard.transient) {
      held.push(shard);
      continue;
    }
    batch.push(shard);
    total += size(shard);
    if (total < limit) continue;
    await score(batch);
    batch = [];
    total = 0;
  }
  await score([...batch, ...held]);
}
