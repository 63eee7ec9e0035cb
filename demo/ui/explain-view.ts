/**
 * Draws an explanation: the passage with the document tokens that matched each query token
 * highlighted (stronger colour for larger contributions), and a table of every query token, the
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
 * The passage text with the best-matching document token of every query word marked. Without an
 * explanation (or spans) it is plain text.
 */
export function highlightedPassage(text: string, explanation: Explanation | null): DocumentFragment {
  const fragment = document.createDocumentFragment();
  const byStart = new Map<number, Mark>();
  if (explanation) {
    const words = explanation.matches.filter(isWord);
    const top = Math.max(1e-6, ...words.map((m) => m.contribution));
    for (const m of words) {
      const span = m.document?.span;
      if (!span || span.end <= span.start) continue;
      const mark = byStart.get(span.start) ?? { start: span.start, end: span.end, weight: 0, queries: [] };
      mark.weight = Math.max(mark.weight, Math.max(0, m.contribution) / top);
      mark.queries.push(`${tokenLabel(m.query.text)} ${m.contribution.toFixed(2)}`);
      byStart.set(span.start, mark);
    }
  }
  let pos = 0;
  for (const mark of [...byStart.values()].sort((a, b) => a.start - b.start)) {
    if (mark.start < pos) continue;
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
      {},
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
      h('caption', {}, `Score ${explanation.score.toFixed(3)}: each query token adds the similarity of its best-matching passage token.`),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Query token'), h('th', { scope: 'col' }, 'Best match in passage'), h('th', { scope: 'col', class: 'num' }, 'Adds'))),
      h('tbody', {}, ...rows, foot),
    ),
  );
}
