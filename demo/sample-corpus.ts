/** Five short articles bundled with the demo: something to search before adding your own files. */
export const SAMPLE_CORPUS: { name: string; text: string }[] = [
  {
    name: 'late-interaction.md',
    text: 'ColBERT encodes every token of a query and a document into its own vector.\n\nIt scores a document by summing, over the query vectors, the best dot product with any document vector. This late interaction keeps word-level detail that a single vector loses, and it tells you which words matched.',
  },
  {
    name: 'dense-retrieval.md',
    text: 'A dense retriever compresses a whole passage into one vector.\n\nIt ranks passages by the similarity of that single vector to the query vector, which is fast but blurs the individual words together.',
  },
  {
    name: 'bm25.txt',
    text: 'BM25 ranks documents by the terms they share with the query, weighting rare terms more and saturating the effect of repeated terms. It needs no model at all, only counts.',
  },
  {
    name: 'webgpu.txt',
    text: 'WebGPU gives web pages access to the graphics processor for compute shaders.\n\nMatrix work such as neural network inference and similarity scoring becomes fast in the browser, with WebAssembly as the fallback where no GPU is available.',
  },
  {
    name: 'indexeddb.txt',
    text: 'IndexedDB stores structured data and binary blobs in the browser, so an application can keep its search index on the device across reloads and use it offline.',
  },
];
