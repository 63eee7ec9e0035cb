// The Node consumer project's script (copied there by setup.ts): the README quick start,
// unchanged except for the model path (argv[2]); prints one JSON line.
import { createSearch } from 'colbert-web';

const search = await createSearch({
  model: process.argv[2],
  device: 'auto',
  onProgress: () => undefined,
});
await search.add([
  { id: 'd1', text: 'Late interaction compares every query token with every document token.', metadata: { title: 'ColBERT' } },
  { id: 'd2', text: 'A dense retriever compresses a passage into a single vector.', metadata: { title: 'DPR' } },
]);
const hits = await search.search('what is late interaction?', { k: 10 });
console.log(JSON.stringify({ device: search.device, runtime: search.info.runtime, hits }));
await search.delete(['d1']);
await search.close();
