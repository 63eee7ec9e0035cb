/**
 * Draws an explanation: the passage with the words that matched a query token well highlighted
 * (whole words, stronger colour for larger contributions), and a table of every query token, the
 * token it matched and what it added to the score. Text is inserted as text nodes only.
 */
import type { Explanation, QueryTokenMatch } from '../../src/index.ts';
import { h } from './dom.ts';

interface Mark {
  start: number;
  end: number;
  weight: number;
  queries: string[];
}

/** Query tokens worth showing one by one: the words of the query (not [CLS], [Q], prompt, [SEP], [MASK]). */
function isWord(m: QueryTokenMatch): boolean {
  return m.query.kind === 'text';
}

/** Short display form of a token: trimmed, whitespace made visible. */
function tokenLabel(text: string): string {
  const t = text.trim();
  return t === '' ? (text.includes('\n') ? '⏎' : '␣') : t;
}

/**
 * Matches below this similarity are not marked in the passage: every query word has a best
 * match somewhere, and for a word the passage lacks it is a weak, misleading one. Shown in the
 * page's legend and in each explanation.
 */
export const HIGHLIGHT_MIN = 0.5;

let segmenter: Intl.Segmenter | undefined;

/** The word-like segments of `text` (Intl.Segmenter), as [start, end) ranges in order. */
function wordRanges(text: string): { start: number; end: number }[] {
  segmenter ??= new Intl.Segmenter(undefined, { granularity: 'word' });
  const out: { start: number; end: number }[] = [];
  for (const seg of segmenter.segment(text)) if (seg.isWordLike) out.push({ start: seg.index, end: seg.index + seg.segment.length });
  return out;
}

/** `[start, end)` widened to the whole words it touches ("ero" in "Affero" becomes "Affero"). */
function widen(words: { start: number; end: number }[], start: number, end: number): { start: number; end: number } {
  let s = start;
  let e = end;
  for (const w of words) {
    if (w.end <= start) continue;
    if (w.start >= end) break;
    s = Math.min(s, w.start);
    e = Math.max(e, w.end);
  }
  return { start: s, end: e };
}

/**
 * The passage text with every word that a query word matches at {@link HIGHLIGHT_MIN} or more
 * marked: whole words (the sub-word pieces a tokenizer makes are merged into one mark), colour
 * by the strongest match. Without an explanation (or spans) it is plain text.
 */
export function highlightedPassage(text: string, explanation: Explanation | null): DocumentFragment {
  const fragment = document.createDocumentFragment();
  let marks: Mark[] = [];
  if (explanation) {
    const words = explanation.matches.filter(isWord);
    const top = Math.max(1e-6, ...words.map((m) => m.contribution));
    const ranges = wordRanges(text);
    for (const m of words) {
      const span = m.document?.span;
      if (!span || span.end <= span.start || m.contribution < HIGHLIGHT_MIN) continue;
      const { start, end } = widen(ranges, span.start, span.end);
      marks.push({ start, end, weight: Math.max(0, m.contribution) / top, queries: [`${tokenLabel(m.query.text)} ${m.contribution.toFixed(2)}`] });
    }
    // Merge marks that overlap or touch inside one word.
    marks.sort((a, b) => a.start - b.start || b.end - a.end);
    const merged: Mark[] = [];
    for (const mark of marks) {
      const last = merged[merged.length - 1];
      if (last && mark.start < last.end) {
        last.end = Math.max(last.end, mark.end);
        last.weight = Math.max(last.weight, mark.weight);
        for (const q of mark.queries) if (!last.queries.includes(q)) last.queries.push(q);
      } else {
        merged.push({ ...mark, queries: [...mark.queries] });
      }
    }
    marks = merged;
  }
  let pos = 0;
  for (const mark of marks) {
    if (mark.start > pos) fragment.append(document.createTextNode(text.slice(pos, mark.start)));
    const el = h('mark', { class: 'match', title: `matches query token ${mark.queries.join(', ')}` }, text.slice(mark.start, mark.end));
    el.style.setProperty('--w', mark.weight.toFixed(2));
    fragment.append(el);
    pos = mark.end;
  }
  if (pos < text.length) fragment.append(document.createTextNode(text.slice(pos)));
  return fragment;
}

/** The per-query-token table of an explanation. */
export function explanationTable(explanation: Explanation, passage: string): HTMLElement {
  const words = explanation.matches.filter(isWord);
  const others = explanation.matches.filter((m) => !isWord(m));
  const othersSum = others.reduce((s, m) => s + m.contribution, 0);
  const top = Math.max(1e-6, ...explanation.matches.map((m) => m.contribution));
  const rows = words.map((m) => {
    const doc = m.document;
    const matched = doc?.span ? passage.slice(doc.span.start, doc.span.end) : doc ? tokenLabel(doc.text) : '—';
    const where = doc?.kind && doc.kind !== 'text' ? ` (${doc.kind})` : '';
    const bar = h('span', { class: 'bar', 'aria-hidden': 'true' });
    bar.style.setProperty('--w', Math.max(0, m.contribution / top).toFixed(3));
    return h(
      'tr',
      m.contribution < HIGHLIGHT_MIN ? { class: 'weak', title: `below ${HIGHLIGHT_MIN.toFixed(2)}: not marked in the passage` } : {},
      h('td', { class: 'tok' }, tokenLabel(m.query.text)),
      h('td', { class: 'tok' }, matched + where),
      h('td', { class: 'num' }, m.contribution.toFixed(3), bar),
    );
  });
  const foot = others.length
    ? h('tr', { class: 'others' }, h('td', { colspan: 2 }, `${others.length} other query tokens (${[...new Set(others.map((m) => tokenLabel(m.query.text)))].join(' ')})`), h('td', { class: 'num' }, othersSum.toFixed(3)))
    : null;
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'explain-table' },
      h('caption', {}, `Score ${explanation.score.toFixed(3)}: each query token adds the similarity of its best-matching passage token. Matches of ${HIGHLIGHT_MIN.toFixed(2)} or more are marked in the passage; weaker ones are greyed here.`),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Query token'), h('th', { scope: 'col' }, 'Best match in passage'), h('th', { scope: 'col', class: 'num' }, 'Adds'))),
      h('tbody', {}, ...rows, foot),
    ),
  );
}
