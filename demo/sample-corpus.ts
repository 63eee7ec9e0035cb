/** A tiny corpus the demo falls back to where the Cranfield collection is not at hand. */
export const SAMPLE_CORPUS = [
  { id: 'colbert', title: 'Late interaction', text: 'ColBERT encodes every token of a query and a document into its own vector and scores a document by summing, over the query vectors, the best dot product with any document vector.' },
  { id: 'dense', title: 'Dense retrieval', text: 'A dense retriever compresses a whole passage into one vector and ranks passages by the similarity of that single vector to the query vector.' },
  { id: 'bm25', title: 'BM25', text: 'BM25 ranks documents by the terms they share with the query, weighting rare terms more and saturating the effect of repeated terms.' },
  { id: 'webgpu', title: 'WebGPU', text: 'WebGPU gives web pages access to the graphics processor for compute shaders, which makes matrix work such as neural network inference fast in the browser.' },
  { id: 'indexeddb', title: 'IndexedDB', text: 'IndexedDB stores structured data and binary blobs in the browser, so an application can keep its search index on the device across reloads.' },
];
