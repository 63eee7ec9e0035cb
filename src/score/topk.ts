/**
 * Streaming top-k: a bounded min-heap that keeps the k best (score, id) pairs seen so far.
 * Ties are broken by id so rankings are deterministic across scorers and runs.
 */

/** One candidate. */
export interface Scored {
  id: string;
  score: number;
}

/** True when a ranks before b (higher score, then smaller id). */
function better(a: Scored, b: Scored): boolean {
  return a.score > b.score || (a.score === b.score && a.id < b.id);
}

/** Keeps the best `k` of everything pushed. */
export class TopK {
  private readonly heap: Scored[] = [];

  constructor(readonly k: number) {}

  /** Offers a candidate; O(log k). */
  push(id: string, score: number): void {
    const item = { id, score };
    const heap = this.heap;
    if (heap.length < this.k) {
      heap.push(item);
      this.up(heap.length - 1);
    } else if (this.k > 0 && better(item, heap[0]!)) {
      heap[0] = item;
      this.down(0);
    }
  }

  /** The kept candidates, best first. */
  sorted(): Scored[] {
    return [...this.heap].sort((a, b) => (better(a, b) ? -1 : better(b, a) ? 1 : 0));
  }

  // Min-heap on "worst at the root": parent is worse than (or equal to) its children.
  private up(i: number): void {
    const heap = this.heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!better(heap[parent]!, heap[i]!)) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  }

  private down(i: number): void {
    const heap = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let worst = i;
      if (l < heap.length && better(heap[worst]!, heap[l]!)) worst = l;
      if (r < heap.length && better(heap[worst]!, heap[r]!)) worst = r;
      if (worst === i) return;
      [heap[worst], heap[i]] = [heap[i]!, heap[worst]!];
      i = worst;
    }
  }
}
