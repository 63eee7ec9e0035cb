/**
 * Worker side of colbert-web, for the './worker' subpath: `exposeEngine()` serves an engine over
 * comlink from inside a Web Worker. Importing this module has no side effects; bring-your-own-worker
 * setups call `exposeEngine()` in their own worker file.
 */
import * as Comlink from 'comlink';
import type { ExportOptions, ExportTarget, ServerExport } from './export/index.ts';
import { Engine, type AddResult, type EngineInfo, type EngineOptions, type ExplainOptions, type ImportResult, type IndexChangeCallback, type IndexStats, type SearchOptions } from './engine.ts';
import { ColbertError } from './errors.ts';
import type { DocumentInput, EmbeddingInput, Explanation, ExplainTarget, Hit, ProgressCallback, TokenMatrix } from './types.ts';
import type { ScoringStatus } from './score/scorer.ts';
import { installErrorTransfer } from './worker-protocol.ts';

/** The object a worker exposes; the main thread reaches it through comlink. */
export interface EngineHost {
  init(options: EngineOptions, onProgress?: ProgressCallback, onChange?: IndexChangeCallback): Promise<EngineInfo>;
  add(docs: DocumentInput[], onProgress?: ProgressCallback): Promise<AddResult>;
  addEmbeddings(items: EmbeddingInput[]): Promise<AddResult>;
  delete(ids: string[]): Promise<number>;
  search(query: string, options?: SearchOptions): Promise<Hit[]>;
  searchEmbedding(query: TokenMatrix, options?: SearchOptions): Promise<Hit[]>;
  encodeQuery(text: string): Promise<TokenMatrix>;
  encodeDocuments(texts: string[]): Promise<TokenMatrix[]>;
  stats(): Promise<IndexStats>;
  countTokens(texts: string[]): Promise<number[]>;
  explain(query: string, target: ExplainTarget, options?: ExplainOptions): Promise<Explanation>;
  /** Where MaxSim runs now (it can fall back to the CPU after a search). */
  scoring(): Promise<ScoringStatus>;
  clear(): Promise<void>;
  exportIndex(): Promise<Uint8Array>;
  exportFor(target: ExportTarget, options?: ExportOptions): Promise<ServerExport>;
  importIndex(file: Uint8Array | ArrayBuffer | Blob): Promise<ImportResult>;
  close(): Promise<void>;
}

function transferMatrices<T extends TokenMatrix | TokenMatrix[]>(value: T): T {
  const list = Array.isArray(value) ? value : [value];
  return Comlink.transfer(value, list.flatMap((m) => [m.data.buffer as ArrayBuffer, m.ids.buffer as ArrayBuffer]));
}

/** Drops the worker's end of a comlink-proxied callback once a call is over (frees its MessagePort). */
function releaseCallback(callback: ProgressCallback | undefined): void {
  const remote = callback as (ProgressCallback & { [Comlink.releaseProxy]?: () => void }) | undefined;
  remote?.[Comlink.releaseProxy]?.();
}

/** Builds the host object around a lazily created engine. */
export function createEngineHost(): EngineHost {
  let engine: Engine | undefined;
  let changeCallback: IndexChangeCallback | undefined;
  const ready = (): Engine => {
    if (!engine) throw new ColbertError('CLOSED', 'The engine is not initialised (or was closed).');
    return engine;
  };
  return {
    async init(options, onProgress, onChange) {
      if (engine) throw new ColbertError('INVALID_ARGUMENT', 'This worker already serves an engine; use one worker per search instance.');
      try {
        // onChange stays proxied for the engine's lifetime; close() releases it.
        changeCallback = onChange;
        engine = await Engine.create(options, onProgress, onChange);
        return engine.info();
      } finally {
        releaseCallback(onProgress);
      }
    },
    async add(docs, onProgress) {
      try {
        return await ready().add(docs, onProgress);
      } finally {
        releaseCallback(onProgress);
      }
    },
    addEmbeddings: (items) => ready().addEmbeddings(items),
    delete: (ids) => ready().delete(ids),
    search: (query, options) => ready().search(query, options),
    searchEmbedding: (query, options) => ready().searchEmbedding(query, options),
    encodeQuery: async (text) => transferMatrices(await ready().encodeQuery(text)),
    encodeDocuments: async (texts) => transferMatrices(await ready().encodeDocuments(texts)),
    stats: () => ready().stats(),
    countTokens: (texts) => ready().countTokens(texts),
    explain: (query, target, options) => ready().explain(query, target, options),
    scoring: async () => ready().scoring(),
    clear: () => ready().clear(),
    exportIndex: async () => {
      const file = await ready().exportIndex();
      return Comlink.transfer(file, [file.buffer as ArrayBuffer]);
    },
    importIndex: (file) => ready().importIndex(file),
    exportFor: async (target, options) => {
      const out = await ready().exportFor(target, options);
      // The documents stream is transferred (Chromium, Firefox, Node): it is read on the other side.
      return Comlink.transfer(out, [out.documents as unknown as Transferable]);
    },
    async close() {
      try {
        await engine?.close();
      } finally {
        releaseCallback(changeCallback as ProgressCallback | undefined);
        changeCallback = undefined;
      }
    },
  };
}

/**
 * Serves an engine from this worker over comlink. Call it once at the top of a worker module.
 * @param endpoint where to listen; default the worker's global scope.
 */
export function exposeEngine(endpoint: Comlink.Endpoint = globalThis as unknown as Comlink.Endpoint): void {
  installErrorTransfer();
  Comlink.expose(createEngineHost(), endpoint);
}
