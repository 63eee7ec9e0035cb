/**
 * A minimal demo: load a model, index a corpus, search it. Document text is only ever set with
 * textContent, never as HTML.
 */
import { createSearch, type ColbertSearch, type Progress } from '../src/index.ts';

interface CorpusDoc {
  id: string;
  title: string;
  text: string;
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const status = $<HTMLParagraphElement>('status');
const progress = $<HTMLProgressElement>('progress');
const modelInput = $<HTMLInputElement>('model');
const query = $<HTMLInputElement>('query');
const searchButton = document.querySelector<HTMLButtonElement>('#search-form button')!;
const results = $<HTMLOListElement>('results');

let search: ColbertSearch | undefined;
let corpus = new Map<string, CorpusDoc>();

function say(text: string, error = false): void {
  status.textContent = text;
  status.classList.toggle('error', error);
}

function onProgress(p: Progress): void {
  if (p.status === 'download') {
    progress.hidden = false;
    progress.max = p.total ?? 1;
    progress.value = p.loaded;
    say(`Downloading ${p.file}: ${(p.loaded / 1e6).toFixed(1)} MB${p.total ? ` of ${(p.total / 1e6).toFixed(1)} MB` : ''}`);
  } else if (p.status === 'encode') {
    progress.hidden = false;
    progress.max = p.total;
    progress.value = p.done;
    say(`Indexing: ${p.done} of ${p.total} documents, ${p.tokens} token vectors`);
  }
}

async function defaultModel(): Promise<string> {
  const fromUrl = new URLSearchParams(location.search).get('model');
  if (fromUrl) return fromUrl;
  // The demo server ships a generated offline test model when one could be built.
  const local = new URL('./models/tiny-test/', location.href).href;
  const probe = await fetch(`${local}config_sentence_transformers.json`, { method: 'HEAD' }).catch(() => null);
  return probe?.ok ? local : 'lightonai/ColBERT-Zero-supervised';
}

async function loadCorpus(): Promise<CorpusDoc[]> {
  const response = await fetch('./data/corpus.json');
  if (!response.ok) throw new Error(`no corpus at ./data/corpus.json (HTTP ${response.status})`);
  return (await response.json()) as CorpusDoc[];
}

async function load(model: string): Promise<void> {
  query.disabled = searchButton.disabled = true;
  await search?.close();
  search = undefined;
  results.replaceChildren();
  try {
    say(`Loading ${model}…`);
    search = await createSearch({ model, onProgress });
    const docs = await loadCorpus();
    corpus = new Map(docs.map((d) => [d.id, d]));
    const t0 = performance.now();
    const added = await search.add(docs.map((d) => ({ id: d.id, text: d.text, metadata: { title: d.title } })), { onProgress });
    progress.hidden = true;
    say(`Ready: ${added.added} documents, ${added.tokens} token vectors, indexed in ${((performance.now() - t0) / 1000).toFixed(1)} s on ${search.device.toUpperCase()}${search.fallbackReason ? ` (${search.fallbackReason})` : ''}.`);
    query.disabled = searchButton.disabled = false;
    query.focus();
  } catch (err) {
    progress.hidden = true;
    const code = (err as { code?: string }).code;
    say(`${code ? `${code}: ` : ''}${(err as Error).message}`, true);
  }
}

async function run(text: string): Promise<void> {
  if (!search || text.trim() === '') return;
  const t0 = performance.now();
  const hits = await search.search(text, { k: 10 });
  const ms = performance.now() - t0;
  results.replaceChildren(
    ...hits.map((hit) => {
      const li = document.createElement('li');
      const title = document.createElement('strong');
      title.textContent = String(hit.metadata?.['title'] ?? hit.id);
      const score = document.createElement('span');
      score.className = 'score';
      score.textContent = hit.score.toFixed(2);
      const body = document.createElement('p');
      const text = corpus.get(hit.id)?.text ?? '';
      body.textContent = text.length > 280 ? `${text.slice(0, 280)}…` : text;
      li.append(title, score, body);
      return li;
    }),
  );
  say(`${hits.length} results in ${ms.toFixed(0)} ms on ${search.device.toUpperCase()}.`);
}

$<HTMLFormElement>('model-form').addEventListener('submit', (event) => {
  event.preventDefault();
  void load(modelInput.value.trim());
});
$<HTMLFormElement>('search-form').addEventListener('submit', (event) => {
  event.preventDefault();
  void run(query.value);
});

modelInput.value = await defaultModel();
void load(modelInput.value);
