/**
 * colbert-web: ColBERT late-interaction search that runs entirely in the browser (or Node).
 * Public exports only.
 */
export { createSearch, DEFAULT_MODEL } from './search.ts';
export type { ColbertSearch, SearchConfig, AddOptions } from './search.ts';
export type { AddResult, EngineInfo, ExplainOptions, ImportResult, IndexChange, IndexChangeCallback, IndexStats, IndexStorage, SearchMode, SearchOptions } from './engine.ts';
export type { LexicalOptions } from './lexical/analyze.ts';
export type { Fusion } from './lexical/bm25.ts';
export { exportFileFor } from './export/index.ts';
export type { ExportOptions, ExportTarget, ServerExport, ServerRequest } from './export/index.ts';
export { listIndexes, deleteIndex } from './store/idb.ts';
export type { IndexSummary } from './store/idb.ts';
export type { Filter, FilterCondition, FilterValue } from './filter/index.ts';
export { ColbertError, isColbertError, ERROR_MESSAGES } from './errors.ts';
export type { ErrorCode, ColbertErrorData } from './errors.ts';
export type {
  Device,
  DeviceOption,
  DocumentInput,
  Dtype,
  EmbeddingInput,
  ExpansionMode,
  ExplainedToken,
  Explanation,
  ExplainTarget,
  QueryTokenMatch,
  TokenKind,
  Hit,
  Metadata,
  Progress,
  ProgressCallback,
  TokenMatrix,
} from './types.ts';
export type { ModelLayout } from './model/config.ts';
export type { VectorPrecision } from './store/precision.ts';
export type { ScoringDevice, ScoringOption, ScoringStatus } from './score/scorer.ts';
export { detectCapabilities } from './capabilities.ts';
export type { Capabilities } from './capabilities.ts';
export { clearModelCache } from './model/files.ts';
export { splitPassages } from './text/passages.ts';
export type { Passage, SplitOptions, TokenCounter } from './text/passages.ts';
