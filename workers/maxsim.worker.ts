/**
 * A MaxSim sub-worker, started by the CPU scorer (src/score/pool.ts) from the engine's thread when
 * the page is cross-origin isolated. All logic lives in src/score/pool-worker.ts.
 */
import { serveMaxSim, type PoolScope } from '../src/score/pool-worker.ts';

serveMaxSim(globalThis as unknown as PoolScope);
