/**
 * The demo page: pick a model, add documents (files, pasted text or a sample), search as you type
 * and see why each result matched. Document text and file names only ever reach the page as
 * text (see ./ui/dom.ts).
 *
 * It uses library features as they exist: a persistent index when `createSearch` knows `name`
 * (IndexedDB), `clear()`, `bytesOnDisk` and `scoringDevice` when present.
 */
import * as lib from '../src/index.ts';
import { createSearch, DEFAULT_MODEL, type ColbertSearch, type Explanation, type Hit, type IndexStats, type Progress } from '../src/index.ts';
import { readDocumentFile, type SourceDocument } from './files.ts';
import { splitPassages } from '../src/text/passages.ts';
import { SAMPLE_CORPUS } from './sample-corpus.ts';
import { byId, errorText, formatBytes, formatCount, formatMs, h, plural } from './ui/dom.ts';
import { explanationTable, highlightedPassage } from './ui/explain-view.ts';

/** What the build included from ../shared (vite.config.ts); absent under the dev server. */
declare const __DEMO_FIXTURES__: { testModel: boolean; cranfield: boolean } | undefined;
const FIXTURES = typeof __DEMO_FIXTURES__ === 'undefined' ? { testModel: false, cranfield: false } : __DEMO_FIXTURES__;

/** Where the build puts the offline test model (demo/build-plugins.ts). */
const TEST_MODEL_URL = new URL('./models/tiny-test/', location.href).href;
/** Passages per `add` call: the unit of progress and of cancelling. */
const ADD_BATCH = 16;
/** Results shown, and how many of them are explained (highlighted) right away. */
const K = 10;
const EXPLAIN_FIRST = 3;
const DEBOUNCE_MS = 250;
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
};

/** True when this build of the library keeps named indexes in IndexedDB. */
const PERSISTENT = 'listIndexes' in lib;

let search: (ColbertSearch & Optional) | undefined;
let modelId = '';
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
    ui.modelNote.textContent = 'Downloads about 150 MB (8-bit, WASM) to 600 MB (fp32, WebGPU) from the Hugging Face Hub once; it is then kept in this browser and works offline. The checkpoint needs an ONNX export in its repository.';
  } else {
    ui.modelNote.textContent = 'A base-size model downloads 150–600 MB once, then works offline. Any PyLate checkpoint with an ONNX export works.';
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
  ui.loadModel.disabled = true;
  ui.query.disabled = true;
  ui.docsControls.disabled = true;
  ui.results.replaceChildren();
  await search?.close();
  search = undefined;
  const downloads = new Downloads();
  ui.modelProgress.hidden = false;
  ui.modelBar.removeAttribute('value');
  say(ui.modelStatus, `Loading ${choice.label}…`);
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
    const config = { model: choice.value, onProgress, name: indexName(choice.value) };
    search = (await createSearch(config)) as ColbertSearch & Optional;
    modelId = choice.value;
    localStorage.setItem(LAST_MODEL_KEY, JSON.stringify({ choice: (new FormData(ui.modelForm).get('model') as string) ?? 'default', custom: ui.customModel.value }));
    const from = downloads.loaded ? ` (${formatBytes(downloads.loaded)} read)` : '';
    say(ui.modelStatus, `Ready: ${choice.test ? 'offline test model (not a language model)' : choice.label}, ${search.dim}-dimensional token vectors, loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s${from}.`, 'ok');
    showDevice();
    ui.docsControls.disabled = false;
    await refreshStats(true);
  } catch (err) {
    say(ui.modelStatus, errorText(err), 'error');
  } finally {
    ui.modelProgress.hidden = true;
    ui.loadModel.disabled = false;
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

async function refreshStats(afterLoad = false): Promise<void> {
  if (!search) return;
  const stats = (await search.stats()) as OptionalStats;
  if (stats.documents === 0 && Object.keys(readManifest()).length) writeManifest({});
  const sources = Object.keys(readManifest()).length;
  const row = (term: string, value: string, key: string) => [h('div', {}, h('dt', {}, term), h('dd', { 'data-stat': key }, value))];
  const size = stats.bytesOnDisk !== undefined ? `${formatBytes(stats.bytesOnDisk)} on disk` : `${formatBytes(stats.vectorBytes)} of vectors`;
  const quota = stats.usage !== undefined && stats.quota ? ` (this site uses ${formatBytes(stats.usage)} of ${formatBytes(stats.quota)})` : '';
  ui.stats.replaceChildren(
    ...row('Documents', formatCount(sources), 'sources'),
    ...row('Passages', formatCount(stats.documents), 'passages'),
    ...row('Token vectors', formatCount(stats.tokens), 'tokens'),
    ...row('Size', size + quota, 'bytes'),
    ...row('Kept', PERSISTENT ? 'in IndexedDB, across reloads' : 'in memory: lost on reload', 'storage'),
  );
  ui.stats.dataset['persistent'] = String(PERSISTENT);
  ui.stats.dataset['passages'] = String(stats.documents);
  ui.query.disabled = stats.documents === 0;
  ui.clear.disabled = stats.documents === 0;
  if (afterLoad && stats.documents > 0) {
    say(ui.indexStatus, `Restored the saved index: ${formatCount(stats.documents)} passages, no re-indexing needed.`, 'ok');
    ui.stats.dataset['restored'] = 'true';
  } else if (afterLoad) {
    say(ui.indexStatus, 'The index is empty: add files, paste text or load the sample corpus.');
  }
}

function cancelIndexing(): void {
  if (indexing) indexing.cancelled = true;
}

async function indexSources(sources: SourceDocument[]): Promise<void> {
  if (!search || sources.length === 0) return;
  if (indexing) {
    say(ui.indexStatus, 'Indexing is already running; wait for it or cancel it first.', 'error');
    return;
  }
  const job = { cancelled: false };
  indexing = job;
  const s = search;
  ui.docsControls.disabled = true;
  ui.indexProgress.hidden = false;
  ui.indexBar.removeAttribute('value');
  ui.indexProgressText.textContent = 'Splitting into passages…';
  say(ui.indexStatus, `Indexing ${plural(sources.length, 'document')}… You can search what is already indexed.`);
  try {
    const budget = s.info.documentTextBudget ?? s.info.documentLength - 8;
    const manifest = readManifest();
    const items: { id: string; text: string; metadata: PassageMeta }[] = [];
    const stale: string[] = [];
    // One round trip counts every source; only those over the budget go through the splitter.
    const whole = await s.countTokens(sources.map((d) => d.text));
    for (const [n, source] of sources.entries()) {
      const fits = whole[n]! <= budget && source.text.trim() !== '';
      const passages = fits ? [{ text: source.text }] : await splitPassages(source.text, budget, (texts) => s.countTokens(texts));
      const before = manifest[source.name] ?? 0;
      for (let i = passages.length; i < before; i++) stale.push(`${source.name}#${i + 1}`);
      passages.forEach((p, i) => items.push({ id: `${source.name}#${i + 1}`, text: p.text, metadata: { source: source.name, passage: i + 1, passages: passages.length, text: p.text } }));
    }
    if (stale.length) await s.delete(stale).catch(() => undefined);
    const t0 = performance.now();
    let done = 0;
    let tokens = 0;
    let statsAt = 0;
    ui.indexBar.max = items.length;
    const show = (passagesDone: number, tokensDone: number) => {
      const seconds = Math.max(1e-3, (performance.now() - t0) / 1000);
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
      show(done, tokens);
      for (const item of batch) manifest[item.metadata.source] = item.metadata.passages;
      writeManifest(manifest);
      if (performance.now() - statsAt > 1000) {
        statsAt = performance.now();
        await refreshStats();
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    const what = `${plural(done, 'passage')}, ${plural(tokens, 'token vector')} in ${seconds.toFixed(1)} s`;
    say(ui.indexStatus, job.cancelled ? `Cancelled: indexed ${what} (kept) of ${formatCount(items.length)}.` : `Indexed ${plural(sources.length, 'document')}: ${what}.`, 'ok');
  } catch (err) {
    say(ui.indexStatus, errorText(err), 'error');
  } finally {
    indexing = undefined;
    ui.indexProgress.hidden = true;
    ui.docsControls.disabled = false;
    await refreshStats().catch(() => undefined);
    if (ui.query.value.trim()) void runSearch(ui.query.value);
  }
}

async function addFiles(files: FileList | File[]): Promise<void> {
  const read: SourceDocument[] = [];
  const problems: string[] = [];
  for (const file of files) {
    try {
      read.push(await readDocumentFile(file));
    } catch (err) {
      problems.push(errorText(err));
    }
  }
  if (problems.length) say(ui.indexStatus, `Skipped: ${problems.join('; ')}`, 'error');
  await indexSources(read);
  if (problems.length) say(ui.indexStatus, `${ui.indexStatus.textContent ?? ''} Skipped: ${problems.join('; ')}`, 'error');
}

async function clearIndex(): Promise<void> {
  if (!search) return;
  cancelIndexing();
  try {
    if (typeof search.clear === 'function') {
      await search.clear();
    } else {
      const ids = Object.entries(readManifest()).flatMap(([name, n]) => Array.from({ length: n }, (_, i) => `${name}#${i + 1}`));
      const present = ids.length ? ids : [];
      if (present.length) await search.delete(present);
    }
    writeManifest({});
    ui.results.replaceChildren();
    say(ui.searchStatus, '');
    say(ui.indexStatus, 'The index is empty.', 'ok');
  } catch (err) {
    say(ui.indexStatus, errorText(err), 'error');
  }
  await refreshStats();
}

// ---------------------------------------------------------------- search

function metaOf(hit: Hit): PassageMeta {
  const m = (hit.metadata ?? {}) as Partial<PassageMeta>;
  return { source: m.source ?? hit.id, passage: m.passage ?? 1, passages: m.passages ?? 1, text: m.text ?? '' };
}

function resultItem(hit: Hit, rank: number, query: string): HTMLLIElement {
  const meta = metaOf(hit);
  const body = h('p', { class: 'passage' }, meta.text);
  const panelId = `why-${rank}`;
  const why = h('button', { type: 'button', class: 'why', 'aria-expanded': 'false', 'aria-controls': panelId }, 'Why this result?');
  const panel = h('div', { id: panelId, class: 'why-panel', hidden: true });
  let explanation: Promise<Explanation> | undefined;
  const explain = () => {
    explanation ??= search!.explain(query, meta.text ? { id: hit.id, text: meta.text } : { id: hit.id });
    return explanation;
  };
  const draw = async (withTable: boolean) => {
    try {
      const e = await explain();
      body.replaceChildren(highlightedPassage(meta.text, e));
      body.dataset['highlighted'] = 'true';
      // Long passages scroll: bring the first match into view inside the passage box.
      const mark = body.querySelector('mark');
      if (mark) body.scrollTop = Math.max(0, mark.offsetTop - 24);
      if (withTable && panel.childElementCount === 0) panel.append(explanationTable(e, meta.text));
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
  if (rank <= EXPLAIN_FIRST) void draw(false);
  const where = meta.passages > 1 ? `passage ${meta.passage} of ${meta.passages}` : '';
  return h(
    'li',
    { class: 'hit', 'data-id': hit.id },
    h('div', { class: 'hit-head' }, h('span', { class: 'source' }, meta.source), where && h('span', { class: 'muted small' }, where), h('span', { class: 'score', title: 'MaxSim score: higher is better' }, hit.score.toFixed(2))),
    body,
    why,
    panel,
  );
}

async function runSearch(text: string): Promise<void> {
  const s = search;
  const seq = ++searchSeq;
  if (!s || text.trim() === '') {
    ui.results.replaceChildren();
    say(ui.searchStatus, '');
    return;
  }
  try {
    const t0 = performance.now();
    const matrix = await s.encodeQuery(text);
    const t1 = performance.now();
    const hits = await s.searchEmbedding(matrix, { k: K });
    const t2 = performance.now();
    if (seq !== searchSeq) return;
    showDevice();
    ui.results.replaceChildren(...hits.map((hit, i) => resultItem(hit, i + 1, text)));
    const stats = ui.stats.dataset['passages'] ?? '?';
    say(ui.searchStatus, `${plural(hits.length, 'result')} from ${stats} passages · query encoding ${formatMs(t1 - t0)} · scoring ${formatMs(t2 - t1)}`);
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
ui.clear.addEventListener('click', () => void clearIndex());

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
  let saved: { choice?: string; custom?: string } = {};
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
    autoload = true;
  }
  updateModelNote();
  if (autoload) await loadModel();
  else say(ui.modelStatus, 'Choose a model and load it. Nothing is downloaded until you do.');
}

void start();
