/**
 * The default worker: serves the engine over comlink. All logic lives in src/.
 * onnxruntime-web may start its own threads from this same bundle (named 'em-pthread'); those
 * must not serve an engine.
 */
import { exposeEngine } from '../src/worker.ts';

if ((globalThis as { name?: string }).name !== 'em-pthread') exposeEngine();
