/**
 * The demo page: pick a model, add documents (files, pasted text or a sample), search as you type
 * and see why each result matched. Document text and file names only ever reach the page as
 * text (see ./ui/dom.ts).
 *
 * It uses library features as they exist: a persistent index when `createSearch` knows `name`
 * (IndexedDB), `clear()`, `exportIndex()` / `importIndex()`, `bytesOnDisk` and `scoringDevice`.
 */
import * as lib from '../src/index.ts';
import { createSearch, DEFAULT_MODEL, type ColbertSearch, type Explanation, type Hit, type IndexStats, type Progress } from '../src/index.ts';
import { readDocumentFile, type SourceDocument } from './files.ts';
import { splitPassages } from '../src/text/passages.ts';
import { SAMPLE_CORPUS } from './sample-corpus.ts';
import { byId, errorText, formatBytes, formatCount, formatMs, h, plural } from './ui/dom.ts';
import { explanationTable, highlightedPassage, HIGHLIGHT_MIN } from './ui/explain-view.ts';

/** What the build included from ../shared (vite.config.ts); absent under the dev server. */
declare const __DEMO_FIXTURES__: { testModel: boolean; cranfield: boolean } | undefined;
const FIXTURES = typeof __DEMO_FIXTURES__ === 'undefined' ? { testModel: false, cranfield: false } : __DEMO_FIXTURES__;

/** Where the build puts the offline test model (demo/build-plugins.ts). */
const TEST_MODEL_URL = new URL('./models/tiny-test/', location.href).href;
/** Passages per `add` call: the unit of progress and of cancelling. */
const ADD_BATCH = 16;
/** Results shown; each is explained (highlighted) when it scrolls into view. */
const K = 10;
const DEBOUNCE_MS = 250;
/** Sources up to this many characters are counted whole first (most fit in one passage). */
const SHORT_CHARS = 16 * 1024;
const LAST_MODEL_KEY = 'colbert-demo:model';

/** Metadata stored with every passage: enough to show and explain it after a reload. */
type PassageMeta = {
  source: string;
  passage: number;
  passages: number;
  text: string;
};

/** Optional library features other branches add; used when present. */
interface Optional {
  clear?: () => Promise<void>;
  scoringDevice?: string;
  scoringFallbackReason?: string | undefined;
  scoringThreads?: number;
  scoringThreadsFallbackReason?: string | undefined;
}
type OptionalStats = IndexStats & { bytesOnDisk?: number; usage?: number; quota?: number };

const ui = {
  modelForm: byId<HTMLFormElement>('model-form'),
  testChoice: byId<HTMLLabelElement>('test-choice'),
  customModel: byId<HTMLInputElement>('custom-model'),
  modelNote: byId<HTMLParagraphElement>('model-note'),
  loadModel: byId<HTMLButtonElement>('load-model'),
  modelProgress: byId<HTMLDivElement>('model-progress'),
  modelBar: byId<HTMLProgressElement>('model-bar'),
  modelProgressText: byId<HTMLSpanElement>('model-progress-text'),
  modelStatus: byId<HTMLParagraphElement>('model-status'),
  docsControls: byId<HTMLFieldSetElement>('docs-controls'),
  drop: byId<HTMLDivElement>('drop'),
  file: byId<HTMLInputElement>('file'),
  pasteName: byId<HTMLInputElement>('paste-name'),
  pasteText: byId<HTMLTextAreaElement>('paste-text'),
  pasteAdd: byId<HTMLButtonElement>('paste-add'),
  sample: byId<HTMLButtonElement>('sample'),
  cranfield: byId<HTMLButtonElement>('cranfield'),
  clear: byId<HTMLButtonElement>('clear'),
  exportIndex: byId<HTMLButtonElement>('export'),
  importFile: byId<HTMLInputElement>('import-file'),
  clearConfirm: byId<HTMLDivElement>('clear-confirm'),
  clearConfirmText: byId<HTMLParagraphElement>('clear-confirm-text'),
  clearYes: byId<HTMLButtonElement>('clear-yes'),
  clearNo: byId<HTMLButtonElement>('clear-no'),
  undoClear: byId<HTMLButtonElement>('undo-clear'),
  pasteHint: byId<HTMLParagraphElement>('paste-hint'),
  legend: byId<HTMLParagraphElement>('highlight-legend'),
  sizeNote: byId<HTMLParagraphElement>('size-note'),
  indexProgress: byId<HTMLDivElement>('index-progress'),
  indexBar: byId<HTMLProgressElement>('index-bar'),
  indexProgressText: byId<HTMLSpanElement>('index-progress-text'),
  cancel: byId<HTMLButtonElement>('cancel'),
  indexStatus: byId<HTMLParagraphElement>('index-status'),
  stats: byId<HTMLDListElement>('index-stats'),
  query: byId<HTMLInputElement>('query'),
  searchStatus: byId<HTMLParagraphElement>('search-status'),
  device: byId<HTMLParagraphElement>('device'),
  results: byId<HTMLOListElement>('results'),
  filterSource: byId<HTMLSelectElement>('filter-source'),
  compressed: byId<HTMLInputElement>('compressed'),
  searchMode: byId<HTMLFieldSetElement>('search-mode'),
};

/** True when this build of the library keeps named indexes in IndexedDB. */
const PERSISTENT = 'listIndexes' in lib;

let search: (ColbertSearch & Optional) | undefined;
let modelId = '';
/** How the loaded model is named on the page ("the offline test model", a repo id). */
let modelLabel = '';
/** The index as it was before "Clear index", until the next change: what Undo restores. */
let undo: { file: Uint8Array; manifest: Record<string, number> } | undefined;
let indexing: { cancelled: boolean } | undefined;
let searchSeq = 0;

function say(el: HTMLElement, text: string, kind: 'info' | 'error' | 'ok' = 'info'): void {
  el.textContent = text;
  el.classList.toggle('error', kind === 'error');
  el.classList.toggle('ok', kind === 'ok');
  if (kind === 'error') el.setAttribute('role', 'alert');
  else el.setAttribute('role', 'status');
}

// ---------------------------------------------------------------- model

function chosenModel(): { value: string; label: string; test: boolean } {
  const choice = (new FormData(ui.modelForm).get('model') as string | null) ?? 'default';
  if (choice === 'test') return { value: TEST_MODEL_URL, label: 'the offline test model', test: true };
  if (choice === 'custom') {
    const value = ui.customModel.value.trim();
    return { value, label: value, test: false };
  }
  return { value: DEFAULT_MODEL, label: DEFAULT_MODEL, test: false };
}

/** The size warning shown before anything downloads. */
function updateModelNote(): void {
  const choice = chosenModel();
  ui.customModel.hidden = (new FormData(ui.modelForm).get('model') as string | null) !== 'custom';
  if (choice.test) {
    ui.modelNote.textContent = 'Ships with this page (about 13 MB, no internet needed). It maps each token to a fixed random vector, so it finds shared words, not meaning: use it to try the page, not to judge search quality.';
  } else if (choice.value === DEFAULT_MODEL) {
    ui.modelNote.textContent = "Downloads the checkpoint's weights (model.safetensors, several hundred MB) from the Hugging Face Hub once. The repository has no ONNX export: the page converts the weights here in the browser into a model it can run (8-bit on WASM, about 150 MB; fp32 on WebGPU, about 600 MB; no Python, nothing leaves the page) and keeps it, so later visits load it directly and work offline.";
  } else {
    ui.modelNote.textContent = 'A base-size model downloads 150–600 MB once, then works offline. Any PyLate checkpoint works: its ONNX export when the repository has one, otherwise its safetensors weights, converted here in the browser (ModernBERT-based checkpoints).';
  }
  ui.modelNote.classList.toggle('warn', !choice.test);
  ui.loadModel.textContent = choice.test ? 'Load model' : 'Download and load';
}

/** Byte totals across the files being downloaded. */
class Downloads {
  private files = new Map<string, { loaded: number; total: number | null }>();
  update(p: Progress): void {
    if (p.status === 'download') this.files.set(p.file, { loaded: p.loaded, total: p.total });
    if (p.status === 'cached') this.files.set(p.file, { loaded: p.bytes, total: p.bytes });
  }
  get loaded(): number {
    return [...this.files.values()].reduce((s, f) => s + f.loaded, 0);
  }
  get total(): number | null {
    const all = [...this.files.values()];
    return all.every((f) => f.total !== null) ? all.reduce((s, f) => s + (f.total ?? 0), 0) : null;
  }
}

/** One index per model (their vectors are not comparable): a stable name for the model. */
function indexName(model: string): string {
  if (model === TEST_MODEL_URL) return 'colbert-demo-test-model';
  return `colbert-demo-${model.replace(/^https?:\/\//, '').replace(/[^A-Za-z0-9._-]+/g, '-').slice(-80)}`;
}

async function loadModel(): Promise<void> {
  const choice = chosenModel();
  if (choice.value === '') {
    say(ui.modelStatus, 'Enter a Hub repo id (owner/name) or a URL first.', 'error');
    ui.customModel.focus();
    return;
  }
  cancelIndexing();
  // The working model and its index stay usable (search included) until the new one is ready.
  const previous = search;
  ui.loadModel.disabled = true;
  ui.docsControls.disabled = true;
  hideClearConfirm();
  const downloads = new Downloads();
  ui.modelProgress.hidden = false;
  ui.modelBar.removeAttribute('value');
  say(ui.modelStatus, `Loading ${choice.label}…${previous ? ` ${modelLabel} stays in use until it is ready.` : ''}`);
  const onProgress = (p: Progress) => {
    downloads.update(p);
    if (p.status === 'download') {
      const total = downloads.total;
      if (total) {
        ui.modelBar.max = total;
        ui.modelBar.value = downloads.loaded;
      }
      ui.modelProgressText.textContent = `Downloading: ${formatBytes(downloads.loaded)}${total ? ` of ${formatBytes(total)}` : ''}`;
    } else if (p.status === 'load') {
      ui.modelProgressText.textContent = p.stage === 'session' ? `Starting the model on ${p.device?.toUpperCase() ?? '…'}` : `Reading the ${p.stage}`;
    }
  };
  try {
    const t0 = performance.now();
    // `name` makes the index persistent where the library supports it (IndexedDB); older
    // builds ignore it and keep the index in memory.
    // A named compressed index stores its codes too: reopening reads them, nothing is re-trained.
    const compressed = ui.compressed.checked;
    const config = { model: choice.value, onProgress, name: indexName(choice.value), ...(compressed ? { compression: {} } : {}) };
    const next = (await createSearch(config)) as ColbertSearch & Optional;
    search = next;
    modelId = choice.value;
    modelLabel = choice.test ? 'the offline test model' : choice.label;
    undo = undefined;
    ui.undoClear.hidden = true;
    await previous?.close().catch(() => undefined);
    ui.results.replaceChildren();
    say(ui.searchStatus, '');
    localStorage.setItem(LAST_MODEL_KEY, JSON.stringify({ choice: (new FormData(ui.modelForm).get('model') as string) ?? 'default', custom: ui.customModel.value, compressed }));
    const from = downloads.loaded ? ` (${formatBytes(downloads.loaded)} read)` : '';
    say(ui.modelStatus, `Ready: ${choice.test ? 'offline test model (not a language model)' : choice.label}, ${next.dim}-dimensional token vectors, loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s${from}.`, 'ok');
    const budget = next.info.documentTextBudget ?? next.info.documentLength - 8;
    ui.pasteHint.textContent = `The text is split into passages that the model reads whole, of up to ${formatCount(budget)} tokens each (about ${formatCount(budget * 4)} characters of English): short paragraphs are packed together into one passage, long ones are split at sentences, then between words.`;
    showDevice();
    await refreshStats(true);
    if (ui.query.value.trim()) void runSearch(ui.query.value);
  } catch (err) {
    const still = previous ? ` Still using ${modelLabel}, with its index as it was.` : '';
    say(ui.modelStatus, `Loading failed: ${errorText(err)}${still}`, 'error');
  } finally {
    ui.modelProgress.hidden = true;
    ui.loadModel.disabled = false;
    ui.docsControls.disabled = search === undefined;
  }
}

function showDevice(): void {
  if (!search) return;
  const model = `Model on ${search.device.toUpperCase()} (${search.dtype})${search.fallbackReason ? `: ${search.fallbackReason}` : search.device === 'webgpu' ? ': WebGPU adapter found' : ''}.`;
  // Where MaxSim runs, when the library reports it (it may change after a search: a failing GPU falls back).
  const threads = search.scoringDevice === 'cpu' && search.scoringThreads !== undefined ? ` (${search.scoringThreads === 1 ? 'one thread' : `${search.scoringThreads} threads`}${search.scoringThreadsFallbackReason ? `: ${search.scoringThreadsFallbackReason}` : ''})` : '';
  const scoring = search.scoringDevice
    ? ` Scoring on ${search.scoringDevice === 'webgpu' ? 'WebGPU' : 'the CPU'}${threads}${search.scoringFallbackReason ? `: ${search.scoringFallbackReason}` : ''}.`
    : ' Scoring on the CPU in the worker.';
  ui.device.textContent = model + scoring;
}

// ---------------------------------------------------------------- index

/** Source name → number of passages, for this model's index (the library stores passages only). */
function manifestKey(): string {
  return `${indexName(modelId)}:sources`;
}
function readManifest(): Record<string, number> {
  try {
    return JSON.parse(localStorage.getItem(manifestKey()) ?? '{}') as Record<string, number>;
  } catch {
    return {};
  }
}
function writeManifest(m: Record<string, number>): void {
  localStorage.setItem(manifestKey(), JSON.stringify(m));
}

/**
 * The index's size, and the browser's figure for the whole site, each saying what it is: the
 * library measures the token vectors exactly and estimates texts, ids and metadata (as
 * uncompressed UTF-16); the browser reports what the site stores (the cached model files
 * included), after its own compression and with some delay. The two are never summed or mixed.
 */
function sizeRows(stats: OptionalStats): { size: string; site: string | undefined; note: string | undefined } {
  // vectorBytes counts the compressed index's resident codes; bytesOnDisk leaves out their stored copy: shown apart.
  const stored = stats.vectorBytes - (stats.compression?.codeBytes ?? 0);
  const vectors = `${formatBytes(stored)} of token vectors (exact)`;
  if (stats.bytesOnDisk === undefined) return { size: vectors, site: undefined, note: undefined };
  const rest = Math.max(0, stats.bytesOnDisk - stored);
  const size = `about ${formatBytes(stats.bytesOnDisk)} (estimate): ${vectors} + about ${formatBytes(rest)} of texts, ids and metadata (estimated, uncompressed)`;
  if (stats.usage === undefined || !stats.quota) return { size, site: undefined, note: undefined };
  const site = `${formatBytes(stats.usage)} used of ${formatBytes(stats.quota)} (the browser's figure for this whole site, model files included)`;
  const note =
    stats.bytesOnDisk > stats.usage
      ? "The browser's figure is smaller than the index estimate: the browser compresses what it stores, and updates its figure with some delay."
      : undefined;
  return { size, site, note };
}

async function refreshStats(afterLoad = false): Promise<void> {
  if (!search) return;
  const stats = (await search.stats()) as OptionalStats;
  if (stats.documents === 0 && Object.keys(readManifest()).length) writeManifest({});
  const sources = Object.keys(readManifest()).length;
  const row = (term: string, value: string, key: string, wide = false) => [h('div', wide ? { class: 'wide' } : {}, h('dt', {}, term), h('dd', { 'data-stat': key }, value))];
  const { size, site, note } = sizeRows(stats);
  ui.stats.replaceChildren(
    ...row('Documents', formatCount(sources), 'sources'),
    ...row('Passages', formatCount(stats.documents), 'passages'),
    ...row('Token vectors', stats.tokens ? `${formatCount(stats.tokens)} (${stats.precision}, ${formatCount((stats.vectorBytes - (stats.compression?.codeBytes ?? 0)) / stats.tokens)} bytes each)` : '0', 'tokens'),
    ...row('Kept', PERSISTENT ? 'in IndexedDB, across reloads' : 'in memory: lost on reload', 'storage'),
    ...row('Index size', size, 'bytes', true),
    ...compressionRow(stats, row),
    ...(site ? row('Site storage', site, 'site', true) : []),
  );
  updateSourceFilter();
  ui.sizeNote.textContent = note ?? '';
  ui.sizeNote.hidden = note === undefined;
  ui.stats.dataset['persistent'] = String(PERSISTENT);
  ui.stats.dataset['passages'] = String(stats.documents);
  ui.query.disabled = stats.documents === 0;
  ui.clear.disabled = stats.documents === 0;
  ui.exportIndex.disabled = stats.documents === 0;
  if (afterLoad && stats.documents > 0) {
    say(ui.indexStatus, `Restored the saved index: ${formatCount(stats.documents)} passages, no re-indexing needed.`, 'ok');
    ui.stats.dataset['restored'] = 'true';
  } else if (afterLoad) {
    say(ui.indexStatus, 'The index is empty: add files, paste text or load the sample corpus.');
  }
}


/**
 * The compressed index, when the page asked for it: its state, and once trained the bytes per token
 * of its codes against fp32. The full vectors stay stored beside the codes (reranking reads them),
 * so today the codes add to the index; the row says so rather than claim a saving.
 */
function compressionRow(stats: OptionalStats, row: (term: string, value: string, key: string, wide?: boolean) => HTMLElement[]): HTMLElement[] {
  const c = stats.compression;
  delete ui.stats.dataset['compression'];
  if (!c || !search) return [];
  // fp32: 4 bytes per dimension (512 for 128 dimensions).
  const fp32 = search.dim * 4;
  ui.stats.dataset['compression'] = c.state;
  if (c.state !== 'ready' || stats.tokens === 0) {
    const why = c.state === 'training' ? 'training its codes…' : `not trained yet: searched exhaustively until the index holds 4,096 tokens (now ${formatCount(stats.tokens)})`;
    return row('Compressed index', why, 'compression', true);
  }
  const perToken = c.codeBytes / stats.tokens;
  const text = `${c.nbits}-bit codes, ${formatCount(c.centroids)} centroids: ${perToken.toFixed(1)} bytes per token, against ${fp32} for fp32 (${(fp32 / perToken).toFixed(1)}× smaller: ${formatBytes(Math.max(0, stats.tokens * fp32 - c.codeBytes))} less than fp32 vectors would take). The full vectors stay stored beside the codes for reranking, so today they add ${formatBytes(c.codeBytes)} to the index rather than replace it.`;
  return row('Compressed index', text, 'compression', true);
}

/** The "In: All files / <file>" choices: the documents of this index, the choice kept while it exists. */
function updateSourceFilter(): void {
  const names = Object.keys(readManifest()).sort((a, b) => a.localeCompare(b));
  const chosen = ui.filterSource.value;
  ui.filterSource.replaceChildren(h('option', { value: '' }, 'All files'), ...names.map((name) => h('option', { value: name }, name)));
  ui.filterSource.value = names.includes(chosen) ? chosen : '';
}

function cancelIndexing(): void {
  if (indexing) indexing.cancelled = true;
}

/**
 * Splits, encodes and stores documents, with progress for both steps. `skipped` lists files
 * refused before (not text, empty, too large): the final message names them once.
 */
async function indexSources(sources: SourceDocument[], skipped: string[] = []): Promise<void> {
  const skippedNote = skipped.length ? ` Skipped ${plural(skipped.length, 'file')}: ${skipped.join('; ')}.` : '';
  if (!search) return;
  if (sources.length === 0) {
    if (skipped.length) say(ui.indexStatus, skippedNote.trim(), 'error');
    return;
  }
  if (indexing) {
    say(ui.indexStatus, 'Indexing is already running; wait for it or cancel it first.', 'error');
    return;
  }
  const job = { cancelled: false };
  indexing = job;
  const s = search;
  undo = undefined;
  ui.undoClear.hidden = true;
  hideClearConfirm();
  ui.docsControls.disabled = true;
  ui.indexProgress.hidden = false;
  ui.indexBar.removeAttribute('value');
  ui.indexProgressText.textContent = 'Splitting into passages…';
  say(ui.indexStatus, `Indexing ${plural(sources.length, 'document')}… You can search what is already indexed.`);
  // The whole time, splitting included: what a visitor waits for.
  const t0 = performance.now();
  try {
    const budget = s.info.documentTextBudget ?? s.info.documentLength - 8;
    const manifest = readManifest();
    const items: { id: string; text: string; metadata: PassageMeta }[] = [];
    const stale: string[] = [];
    // One round trip counts every short source; only those over the budget go through the
    // splitter. A long one goes straight to it (it counts its paragraphs anyway).
    const short = (d: SourceDocument) => d.text.length <= SHORT_CHARS;
    const counted = await s.countTokens(sources.filter(short).map((d) => d.text));
    let next = 0;
    const whole = sources.map((d) => (short(d) ? counted[next++]! : Number.POSITIVE_INFINITY));
    const totalChars = sources.reduce((n, d) => n + d.text.length, 0);
    let charsDone = 0;
    ui.indexBar.max = 1;
    for (const [n, source] of sources.entries()) {
      const fits = whole[n]! <= budget && source.text.trim() !== '';
      const onProgress = (fraction: number) => {
        ui.indexBar.value = (charsDone + fraction * source.text.length) / Math.max(1, totalChars);
        ui.indexProgressText.textContent = `Splitting ${source.name} into passages: ${Math.floor(fraction * 100)}%${sources.length > 1 ? ` (document ${n + 1} of ${sources.length})` : ''}`;
      };
      const passages = fits ? [{ text: source.text }] : await splitPassages(source.text, budget, (texts) => s.countTokens(texts), { onProgress });
      charsDone += source.text.length;
      const before = manifest[source.name] ?? 0;
      for (let i = passages.length; i < before; i++) stale.push(`${source.name}#${i + 1}`);
      passages.forEach((p, i) => items.push({ id: `${source.name}#${i + 1}`, text: p.text, metadata: { source: source.name, passage: i + 1, passages: passages.length, text: p.text } }));
      if (job.cancelled) break;
    }
    if (stale.length) await s.delete(stale).catch(() => undefined);
    const t1 = performance.now();
    let done = 0;
    let tokens = 0;
    let unchanged = 0;
    let statsAt = 0;
    ui.indexBar.max = Math.max(1, items.length);
    ui.indexBar.value = 0;
    const show = (passagesDone: number, tokensDone: number) => {
      const seconds = Math.max(1e-3, (performance.now() - t1) / 1000);
      ui.indexBar.value = passagesDone;
      ui.indexProgressText.textContent = `${formatCount(passagesDone)} of ${formatCount(items.length)} passages · ${(passagesDone / seconds).toFixed(1)} passages/s · ${formatCount(tokensDone / seconds)} tokens/s`;
    };
    for (let start = 0; start < items.length && !job.cancelled; start += ADD_BATCH) {
      const batch = items.slice(start, start + ADD_BATCH);
      const result = await s.add(batch, {
        onProgress: (p) => {
          if (p.status === 'encode') show(done + p.done, tokens + p.tokens);
        },
      });
      done += batch.length;
      tokens += result.tokens;
      unchanged += result.skipped;
      show(done, tokens);
      for (const item of batch) manifest[item.metadata.source] = item.metadata.passages;
      writeManifest(manifest);
      if (performance.now() - statsAt > 1000) {
        statsAt = performance.now();
        await refreshStats();
      }
    }
    const t2 = performance.now();
    const timing = `in ${((t2 - t0) / 1000).toFixed(1)} s (splitting ${((t1 - t0) / 1000).toFixed(1)} s, encoding ${((t2 - t1) / 1000).toFixed(1)} s)`;
    let message: string;
    if (job.cancelled) {
      message = `Cancelled: indexed ${plural(done - unchanged, 'passage')}, ${plural(tokens, 'token vector')} (kept) of ${formatCount(items.length)}, ${timing}.`;
    } else if (done > 0 && unchanged === done) {
      const names = sources.map((d) => d.name).join(', ');
      message = `Already indexed and unchanged, so skipped: ${names} (${plural(done, 'passage')}, nothing re-encoded).`;
    } else {
      const same = unchanged ? ` (${formatCount(unchanged)} already indexed and unchanged, skipped)` : '';
      message = `Indexed ${plural(sources.length, 'document')}: ${plural(done, 'passage')}${same}, ${plural(tokens, 'token vector')} ${timing}.`;
    }
    say(ui.indexStatus, message + skippedNote, skipped.length ? 'error' : 'ok');
  } catch (err) {
    say(ui.indexStatus, errorText(err) + skippedNote, 'error');
  } finally {
    indexing = undefined;
    ui.indexProgress.hidden = true;
    ui.docsControls.disabled = false;
    await refreshStats().catch(() => undefined);
    if (ui.query.value.trim()) void runSearch(ui.query.value);
  }
}

async function addFiles(files: FileList | File[]): Promise<void> {
  const list = [...files];
  if (list.length === 0) return;
  // Reading and sniffing a large file takes a moment: say so, so the old message never reads as the outcome.
  if (!indexing) say(ui.indexStatus, `Reading ${plural(list.length, 'file')}…`);
  ui.indexStatus.setAttribute('aria-busy', 'true');
  try {
    const read: SourceDocument[] = [];
    const problems: string[] = [];
    for (const file of list) {
      try {
        read.push(await readDocumentFile(file));
      } catch (err) {
        problems.push(errorText(err));
      }
    }
    await indexSources(read, problems);
  } finally {
    finishedJob();
  }
}

/**
 * Marks the end of one add-files job on the status line: aria-busy drops, and data-jobs counts
 * the jobs finished, so a script (or the browser tests) can wait for "this job's outcome".
 */
function finishedJob(): void {
  ui.indexStatus.setAttribute('aria-busy', 'false');
  ui.indexStatus.dataset['jobs'] = String(Number(ui.indexStatus.dataset['jobs'] ?? '0') + 1);
}

/** Asks before deleting: what would go, and that Undo is possible right after. */
async function askClear(): Promise<void> {
  if (!search) return;
  const stats = (await search.stats()) as OptionalStats;
  const sources = Object.keys(readManifest()).length;
  const size = stats.bytesOnDisk !== undefined ? `about ${formatBytes(stats.bytesOnDisk)}` : formatBytes(stats.vectorBytes);
  ui.clearConfirmText.textContent = `Delete the whole index: ${plural(sources, 'document')}, ${plural(stats.documents, 'passage')}, ${size}? You can undo it right after, until you add documents, change model or leave the page; to keep a copy, export it first.`;
  ui.clearConfirm.hidden = false;
  ui.clearNo.focus();
}

function hideClearConfirm(): void {
  ui.clearConfirm.hidden = true;
}

async function clearIndex(): Promise<void> {
  if (!search) return;
  hideClearConfirm();
  cancelIndexing();
  try {
    // Kept in memory for Undo: the library's portable export of the index as it is.
    const file = await search.exportIndex();
    const manifest = readManifest();
    await search.clear();
    undo = { file, manifest };
    writeManifest({});
    ui.results.replaceChildren();
    ui.query.value = '';
    ui.legend.hidden = true;
    say(ui.searchStatus, '');
    say(ui.indexStatus, 'The index is empty.', 'ok');
    ui.undoClear.hidden = false;
    ui.undoClear.focus();
  } catch (err) {
    say(ui.indexStatus, errorText(err), 'error');
  }
  await refreshStats();
}

async function undoClear(): Promise<void> {
  const saved = undo;
  if (!search || !saved) return;
  try {
    const result = await search.importIndex(saved.file);
    writeManifest(saved.manifest);
    undo = undefined;
    ui.undoClear.hidden = true;
    say(ui.indexStatus, `Restored the index: ${plural(result.documents, 'passage')}, ${plural(result.tokens, 'token vector')}.`, 'ok');
  } catch (err) {
    say(ui.indexStatus, errorText(err), 'error');
  }
  await refreshStats();
}

/** Downloads the index as the library's portable file (it opens again with "Import index"). */
async function exportIndex(): Promise<void> {
  if (!search) return;
  try {
    const file = await search.exportIndex();
    const url = URL.createObjectURL(new Blob([file as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }));
    const link = h('a', { href: url, download: `${indexName(modelId)}.cbwidx`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    say(ui.indexStatus, `Exported the index: ${formatBytes(file.byteLength)} (${link.getAttribute('download') ?? ''}). Import it here or in another browser with the same model.`, 'ok');
  } catch (err) {
    say(ui.indexStatus, errorText(err), 'error');
  }
}

/**
 * The document list of an index that arrived without it (an imported file): every passage's
 * metadata, read with one search for a zero query over all of them (every score is 0).
 */
async function manifestFromIndex(s: ColbertSearch, passages: number): Promise<Record<string, number>> {
  const manifest: Record<string, number> = {};
  if (passages === 0) return manifest;
  const zero = { data: new Float32Array(s.dim), tokens: 1, dim: s.dim, ids: new Int32Array(1) };
  // exhaustive: a compressed index would return only the candidates of the zero query's centroids.
  for (const hit of await s.searchEmbedding(zero, { k: passages, exhaustive: true })) {
    const meta = metaOf(hit);
    manifest[meta.source] = Math.max(manifest[meta.source] ?? 0, meta.passages);
  }
  return manifest;
}

/** Replaces the index by an exported file; a damaged file or another model's changes nothing. */
async function importIndex(file: File): Promise<void> {
  if (!search) return;
  if (indexing) {
    say(ui.indexStatus, 'Indexing is running; wait for it or cancel it first.', 'error');
    return;
  }
  const s = search;
  hideClearConfirm();
  ui.docsControls.disabled = true;
  say(ui.indexStatus, `Importing ${file.name}…`);
  try {
    const result = await s.importIndex(file);
    writeManifest(await manifestFromIndex(s, result.documents));
    undo = undefined;
    ui.undoClear.hidden = true;
    say(ui.indexStatus, `Imported ${file.name}: ${plural(Object.keys(readManifest()).length, 'document')}, ${plural(result.documents, 'passage')}, ${plural(result.tokens, 'token vector')}; it replaced the index.`, 'ok');
  } catch (err) {
    say(ui.indexStatus, `${file.name} was not imported, the index is unchanged: ${errorText(err)}`, 'error');
  } finally {
    ui.docsControls.disabled = false;
  }
  await refreshStats();
  if (ui.query.value.trim()) void runSearch(ui.query.value);
}

// ---------------------------------------------------------------- search

function metaOf(hit: Hit): PassageMeta {
  const m = (hit.metadata ?? {}) as Partial<PassageMeta>;
  return { source: m.source ?? hit.id, passage: m.passage ?? 1, passages: m.passages ?? 1, text: m.text ?? '' };
}

/** Highlights each result when it first comes into view (an explanation per result costs an encode). */
const highlightWhenSeen = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      highlightWhenSeen.unobserve(entry.target);
      (entry.target as HTMLElement & { highlight?: () => void }).highlight?.();
    }
  },
  { rootMargin: '200px 0px' },
);

/** Shows "more below" under a passage box that scrolls, until it is scrolled to its end. */
function watchOverflow(body: HTMLElement, cue: HTMLElement): void {
  const update = () => {
    const more = body.scrollHeight - body.clientHeight > 2;
    const atEnd = body.scrollTop + body.clientHeight >= body.scrollHeight - 2;
    body.classList.toggle('scrolls', more);
    // A box that scrolls can be scrolled with the keyboard too.
    if (more) body.setAttribute('tabindex', '0');
    else body.removeAttribute('tabindex');
    cue.hidden = !more || atEnd;
  };
  new ResizeObserver(update).observe(body);
  body.addEventListener('scroll', update, { passive: true });
}

const SCORE_TITLE: Record<Mode, string> = {
  semantic: 'MaxSim score: higher is better',
  lexical: 'BM25 score: higher is better',
  hybrid: 'Fused score (reciprocal rank fusion of the semantic and lexical rankings): higher is better',
};

/** The BM25 side of an explanation: the query's words this passage contains and what each added. */
function lexicalTerms(lexical: NonNullable<Explanation['lexical']>): HTMLElement {
  const found = lexical.terms.filter((t) => t.tf > 0);
  if (found.length === 0) return h('p', { class: 'lexical-terms muted small' }, `Lexical (BM25): none of the query's words (${lexical.queryTerms.join(' ') || 'none'}) are in this passage.`);
  return h(
    'p',
    { class: 'lexical-terms small' },
    `Lexical (BM25) score ${lexical.score.toFixed(3)} from the words: `,
    ...found.flatMap((t, i) => [i ? ', ' : '', h('code', { class: 'term' }, t.term), ` ×${t.tf} (adds ${t.contribution.toFixed(3)})`]),
  );
}

function resultItem(hit: Hit, rank: number, query: string, mode: Mode): HTMLLIElement {
  const meta = metaOf(hit);
  const body = h('p', { class: 'passage' }, meta.text);
  const cue = h('p', { class: 'more-cue muted small', hidden: true }, '↓ More of this passage below: scroll inside it');
  watchOverflow(body, cue);
  const panelId = `why-${rank}`;
  const why = h('button', { type: 'button', class: 'why', 'aria-expanded': 'false', 'aria-controls': panelId }, 'Why this result?');
  const panel = h('div', { id: panelId, class: 'why-panel', hidden: true });
  let explanation: Promise<Explanation> | undefined;
  const explain = () => {
    explanation ??= search!.explain(query, meta.text ? { id: hit.id, text: meta.text } : { id: hit.id });
    return explanation;
  };
  let highlighted = false;
  const draw = async (withTable: boolean) => {
    try {
      const e = await explain();
      if (!highlighted) {
        highlighted = true;
        body.replaceChildren(highlightedPassage(meta.text, e));
        body.dataset['highlighted'] = 'true';
        // Long passages scroll: bring the first match into view inside the passage box.
        const mark = body.querySelector('mark');
        if (mark) body.scrollTop = Math.max(0, mark.offsetTop - 24);
      }
      if (withTable && panel.childElementCount === 0) {
        panel.append(explanationTable(e, meta.text));
        if (e.lexical) panel.append(lexicalTerms(e.lexical));
      }
    } catch (err) {
      panel.replaceChildren(h('p', { class: 'error' }, errorText(err)));
    }
  };
  why.addEventListener('click', () => {
    const open = why.getAttribute('aria-expanded') !== 'true';
    why.setAttribute('aria-expanded', String(open));
    panel.hidden = !open;
    if (open) void draw(true);
  });
  const where = meta.passages > 1 ? `passage ${meta.passage} of ${meta.passages}` : '';
  const item = h(
    'li',
    { class: 'hit', 'data-id': hit.id },
    h('div', { class: 'hit-head' }, h('span', { class: 'source' }, meta.source), where && h('span', { class: 'muted small' }, where), h('span', { class: 'score', title: SCORE_TITLE[mode] }, mode === 'hybrid' ? hit.score.toFixed(4) : hit.score.toFixed(2))),
    body,
    cue,
    why,
    panel,
  ) as HTMLLIElement & { highlight?: () => void };
  item.highlight = () => void draw(false);
  highlightWhenSeen.observe(item);
  return item;
}

type Mode = 'semantic' | 'lexical' | 'hybrid';
function chosenMode(): Mode {
  const checked = ui.searchMode.querySelector<HTMLInputElement>('input[name="mode"]:checked');
  return (checked?.value as Mode | undefined) ?? 'semantic';
}
/** The passage metadata key that holds its file name (PassageMeta.source). */
function chosenFilter(): { source: string } | undefined {
  return ui.filterSource.value ? { source: ui.filterSource.value } : undefined;
}

async function runSearch(text: string): Promise<void> {
  const s = search;
  const seq = ++searchSeq;
  if (!s || text.trim() === '') {
    ui.results.replaceChildren();
    ui.legend.hidden = true;
    say(ui.searchStatus, '');
    return;
  }
  try {
    const mode = chosenMode();
    const filter = chosenFilter();
    const t0 = performance.now();
    let hits: Hit[];
    let timing: string;
    if (mode === 'semantic') {
      // Encoding and scoring apart, to show what each costs.
      const matrix = await s.encodeQuery(text);
      const t1 = performance.now();
      hits = await s.searchEmbedding(matrix, filter ? { k: K, filter } : { k: K });
      timing = `query encoding ${formatMs(t1 - t0)} · scoring ${formatMs(performance.now() - t1)}`;
    } else {
      // Lexical and hybrid need the query text (BM25 reads its words); hybrid fuses with the library's default (RRF).
      hits = await s.search(text, filter ? { k: K, mode, filter } : { k: K, mode });
      timing = `${mode} search ${formatMs(performance.now() - t0)}`;
    }
    if (seq !== searchSeq) return;
    showDevice();
    for (const old of ui.results.children) highlightWhenSeen.unobserve(old);
    ui.results.replaceChildren(...hits.map((hit, i) => resultItem(hit, i + 1, text, mode)));
    ui.legend.textContent = `Marked in each passage: the words that match a word of your query with a similarity of ${HIGHLIGHT_MIN.toFixed(2)} or more (darker: closer), whole words. Every result is marked as it comes into view; "Why this result?" lists every query token and what it added.`;
    ui.legend.hidden = hits.length === 0;
    // Which query the results are for (tests wait on it; a stale status line says nothing).
    ui.results.dataset['query'] = text;
    ui.results.dataset['mode'] = mode;
    ui.results.dataset['filter'] = filter?.source ?? '';
    const stats = ui.stats.dataset['passages'] ?? '?';
    const scope = filter ? ` of ${filter.source}` : '';
    say(ui.searchStatus, `${plural(hits.length, 'result')} from ${stats} passages${scope} · ${timing}`);
  } catch (err) {
    if (seq === searchSeq) say(ui.searchStatus, errorText(err), 'error');
  }
}

// ---------------------------------------------------------------- wiring

let debounce: ReturnType<typeof setTimeout> | undefined;
ui.query.addEventListener('input', () => {
  clearTimeout(debounce);
  debounce = setTimeout(() => void runSearch(ui.query.value), DEBOUNCE_MS);
});
byId<HTMLFormElement>('search-form').addEventListener('submit', (event) => {
  event.preventDefault();
  clearTimeout(debounce);
  void runSearch(ui.query.value);
});
ui.modelForm.addEventListener('change', updateModelNote);
// A new file choice or ranking searches again at once.
const searchAgain = () => {
  clearTimeout(debounce);
  if (ui.query.value.trim()) void runSearch(ui.query.value);
};
ui.filterSource.addEventListener('change', searchAgain);
ui.searchMode.addEventListener('change', searchAgain);
ui.modelForm.addEventListener('submit', (event) => {
  event.preventDefault();
  void loadModel();
});
ui.file.addEventListener('change', () => {
  const files = [...(ui.file.files ?? [])];
  ui.file.value = '';
  void addFiles(files);
});
for (const type of ['dragenter', 'dragover'] as const) {
  ui.drop.addEventListener(type, (event) => {
    event.preventDefault();
    if (!ui.docsControls.disabled) ui.drop.classList.add('over');
  });
}
ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
ui.drop.addEventListener('drop', (event) => {
  event.preventDefault();
  ui.drop.classList.remove('over');
  if (ui.docsControls.disabled) return;
  void addFiles([...(event.dataTransfer?.files ?? [])]);
});
// A file dropped next to the zone must not make the browser navigate away to it.
window.addEventListener('dragover', (event) => event.preventDefault());
window.addEventListener('drop', (event) => event.preventDefault());
ui.pasteAdd.addEventListener('click', () => {
  const text = ui.pasteText.value;
  if (text.trim() === '') {
    say(ui.indexStatus, 'Paste some text first.', 'error');
    return;
  }
  void indexSources([{ name: ui.pasteName.value.trim() || 'pasted text', text }]).then(() => {
    ui.pasteText.value = '';
  });
});
ui.sample.addEventListener('click', () => void indexSources(SAMPLE_CORPUS));
ui.cranfield.addEventListener('click', () => {
  void (async () => {
    const response = await fetch('./data/corpus.json');
    const docs = (await response.json()) as { id: string; title: string; text: string }[];
    await indexSources(docs.map((d) => ({ name: `cranfield-${d.id}: ${d.title}`, text: d.text })));
  })().catch((err: unknown) => say(ui.indexStatus, errorText(err), 'error'));
});
ui.cancel.addEventListener('click', () => {
  cancelIndexing();
  ui.indexProgressText.textContent = 'Cancelling after this batch…';
});
ui.clear.addEventListener('click', () => void askClear());
ui.clearYes.addEventListener('click', () => void clearIndex());
ui.clearNo.addEventListener('click', () => {
  hideClearConfirm();
  say(ui.indexStatus, 'Kept the index.');
  ui.clear.focus();
});
ui.clearConfirm.addEventListener('keydown', (event) => {
  if (event.key === 'Escape') ui.clearNo.click();
});
ui.undoClear.addEventListener('click', () => void undoClear());
ui.exportIndex.addEventListener('click', () => void exportIndex());
ui.importFile.addEventListener('change', () => {
  const file = ui.importFile.files?.[0];
  ui.importFile.value = '';
  if (file) void importIndex(file);
});

async function start(): Promise<void> {
  if (import.meta.env.PROD && 'serviceWorker' in navigator && window.isSecureContext) {
    navigator.serviceWorker.register('./sw.js').catch((err: unknown) => say(ui.device, `Offline caching is off: ${errorText(err)}`));
  }
  const haveTest = FIXTURES.testModel;
  const haveCranfield = FIXTURES.cranfield;
  ui.testChoice.hidden = !haveTest;
  ui.cranfield.hidden = !haveCranfield;
  const params = new URLSearchParams(location.search);
  const fromUrl = params.get('model');
  let saved: { choice?: string; custom?: string; compressed?: boolean } = {};
  try {
    saved = JSON.parse(localStorage.getItem(LAST_MODEL_KEY) ?? '{}') as typeof saved;
  } catch {
    saved = {};
  }
  const select = (value: string) => {
    const radio = ui.modelForm.querySelector<HTMLInputElement>(`input[name="model"][value="${value}"]`);
    if (radio) radio.checked = true;
  };
  let autoload = false;
  if (fromUrl === 'test' && haveTest) {
    select('test');
    autoload = true;
  } else if (fromUrl) {
    select('custom');
    ui.customModel.value = fromUrl;
    autoload = true;
  } else if (saved.choice && (saved.choice !== 'test' || haveTest)) {
    // The model used last time: its files are in this browser's cache, so nothing downloads.
    select(saved.choice);
    ui.customModel.value = saved.custom ?? '';
    ui.compressed.checked = saved.compressed === true;
    autoload = true;
  }
  updateModelNote();
  if (autoload) await loadModel();
  else say(ui.modelStatus, 'Choose a model and load it. Nothing is downloaded until you do.');
}

void start();
