// The browser app of the Vite and webpack consumer projects (copied into each by setup.ts): the
// README quick start unchanged except for the model URL, then the index file that
// `colbert-web index` built in the Node project, then GPU scoring. Results go to window.__result.
import { createSearch } from 'colbert-web';

const model = new URL('/models/tjs/', location.href).href;

async function run() {
  const out = { crossOriginIsolated: self.crossOriginIsolated };
  const search = await createSearch({
    model,
    device: 'auto',
    onProgress: (p) => console.log(p.status),
  });
  await search.add([
    { id: 'd1', text: 'Late interaction compares every query token with every document token.', metadata: { title: 'ColBERT' } },
    { id: 'd2', text: 'A dense retriever compresses a passage into a single vector.', metadata: { title: 'DPR' } },
  ]);
  const hits = await search.search('what is late interaction?', { k: 10 });
  out.quickStart = { device: search.device, top: hits[0]?.id, scores: hits.map((h) => h.score) };
  await search.delete(['d1']);
  await search.close();

  const file = await (await fetch('./docs.cbwidx')).arrayBuffer();
  const cpu = await createSearch({ model, scoring: 'cpu' });
  const imported = await cpu.importIndex(file);
  const fromFile = await cpu.search('sourdough bread yeast', { k: 3 });
  out.index = { imported, top: fromFile[0]?.metadata, scoring: { device: cpu.scoringDevice, threads: cpu.scoringThreads, reason: cpu.scoringThreadsFallbackReason } };
  await cpu.close();

  const gpu = await createSearch({ model, scoring: 'webgpu' });
  await gpu.importIndex(file);
  const gpuHits = await gpu.search('sourdough bread yeast', { k: 3 });
  out.webgpu = { scoring: { device: gpu.scoringDevice, reason: gpu.scoringFallbackReason }, top: gpuHits[0]?.metadata };
  await gpu.close();
  return out;
}

run().then(
  (result) => { window.__result = result; },
  (err) => { window.__result = { error: `${err?.code ?? ''} ${err?.message ?? err}` }; },
);
