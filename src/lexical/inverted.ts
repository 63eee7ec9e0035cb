/**
 * An in-memory inverted index (term -> documents with their term frequency), the memory store's
 * lexical side. The IndexedDB store keeps the same lists on disk in blocks (see ../store/idb.ts).
 */
import { termFrequencies, type LexicalConfig } from './analyze.ts';
import type { LexicalPostings, Posting } from './bm25.ts';

export class InvertedIndex {
  private readonly lists = new Map<string, Map<string, number>>();
  private readonly docs = new Map<string, { terms: string[]; length: number }>();
  private totalLength = 0;

  constructor(readonly config: LexicalConfig) {}

  /** Indexes (or re-indexes) a document's text; without text the document leaves the index. */
  set(id: string, text: string | undefined): void {
    this.delete(id);
    if (text === undefined) return;
    const { tf, length } = termFrequencies(text, this.config);
    for (const [term, f] of tf) {
      let list = this.lists.get(term);
      if (!list) this.lists.set(term, (list = new Map()));
      list.set(id, f);
    }
    this.docs.set(id, { terms: [...tf.keys()], length });
    this.totalLength += length;
  }

  delete(id: string): void {
    const doc = this.docs.get(id);
    if (!doc) return;
    for (const term of doc.terms) {
      const list = this.lists.get(term)!;
      list.delete(id);
      if (!list.size) this.lists.delete(term);
    }
    this.totalLength -= doc.length;
    this.docs.delete(id);
  }

  clear(): void {
    this.lists.clear();
    this.docs.clear();
    this.totalLength = 0;
  }

  /** Documents indexed, and distinct terms. */
  get size(): { documents: number; terms: number } {
    return { documents: this.docs.size, terms: this.lists.size };
  }

  postings(terms: readonly string[]): LexicalPostings {
    const lists = new Map<string, Posting[]>();
    for (const term of new Set(terms)) {
      const list = this.lists.get(term);
      lists.set(term, list ? Array.from(list, ([id, tf]) => ({ id, tf, length: this.docs.get(id)!.length })) : []);
    }
    return { documents: this.docs.size, totalLength: this.totalLength, lists };
  }
}
