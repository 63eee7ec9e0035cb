/**
 * Splits long documents into passages that the model encodes whole: paragraphs are packed
 * together up to a token budget (the model's document length minus prompt, specials and marker);
 * a paragraph over the budget is split at sentences, a sentence over it at words, never inside a
 * word (but for one word longer than the budget). Passages keep
 * their character range in the source, so results point back to where they came from.
 */

/** One passage of a source document. */
export interface Passage {
  /** The passage text: exactly `source.slice(start, end)`. */
  text: string;
  /** UTF-16 offsets of the passage in the source text. */
  start: number;
  end: number;
}

/** Counts the tokens each text takes on its own (the library's `countTokens`). */
export type TokenCounter = (texts: string[]) => Promise<number[]>;

interface Unit {
  start: number;
  end: number;
  tokens: number;
  /** What joining it to the unit before may cost: a space before a word merges into the word's token. */
  joint: number;
}

/** `[start, end)` ranges of the non-blank pieces of `text` between matches of `separator`. */
function pieces(text: string, from: number, to: number, separator: RegExp): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  const slice = text.slice(from, to);
  const re = new RegExp(separator.source, 'g');
  let last = 0;
  const push = (a: number, b: number) => {
    const part = slice.slice(a, b);
    const lead = part.length - part.trimStart().length;
    const trimmed = part.trim();
    if (trimmed !== '') out.push({ start: from + a + lead, end: from + a + lead + trimmed.length });
  };
  for (let m = re.exec(slice); m !== null; m = re.exec(slice)) {
    push(last, m.index + (m[1]?.length ?? 0));
    last = m.index + m[0].length;
    if (m[0].length === 0) re.lastIndex++;
  }
  push(last, slice.length);
  return out;
}

/** Paragraphs, then sentences, then words: each level only where the previous one is over budget. */
const LEVELS = [/\n[ \t]*\n\s*/, /([.!?。！？])\s+/, /\s+/];

/** Options of {@link splitPassages}. */
export interface SplitOptions {
  /**
   * Called as splitting advances with the fraction done (0 to 1, never decreasing). Between
   * calls the splitter yields to the event loop, so a page can draw its progress bar.
   */
  onProgress?: (fraction: number) => void;
}

/** Characters of text per `count` call: long documents are counted in steps, not in one message. */
const COUNT_CHARS = 64 * 1024;
/** Share of the progress given to finding the units; the rest is checking the packed passages. */
const UNITS_SHARE = 0.85;

/** Counts texts in batches of about {@link COUNT_CHARS} characters, yielding between batches. */
async function countInSteps(texts: string[], count: TokenCounter, step?: (done: number) => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  let from = 0;
  while (from < texts.length) {
    let to = from;
    let chars = 0;
    while (to < texts.length && (to === from || chars + texts[to]!.length <= COUNT_CHARS)) chars += texts[to++]!.length;
    out.push(...(await count(texts.slice(from, to))));
    from = to;
    await step?.(from);
  }
  return out;
}

/** Lets the page draw: a macrotask break at most every ~30 ms. */
function yielder(): () => Promise<void> {
  let last = Date.now();
  return async () => {
    if (Date.now() - last < 30) return;
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
    last = Date.now();
  };
}

let wordSegmenter: Intl.Segmenter | undefined;
let graphemeSegmenter: Intl.Segmenter | undefined;

/**
 * Where to cut `text[start, end)` in two, as near its middle as possible: at a word boundary
 * (Intl.Segmenter: also between CJK words, which have no spaces), else, for one word longer than
 * the budget (a long URL, base64), between two graphemes, so no character is ever cut apart.
 * `undefined` when the range is one grapheme.
 */
function cutPoint(text: string, start: number, end: number): number | undefined {
  const mid = start + Math.floor((end - start) / 2);
  const slice = text.slice(start, end);
  const nearest = (segmenter: Intl.Segmenter): number | undefined => {
    let best: number | undefined;
    for (const seg of segmenter.segment(slice)) {
      const at = start + seg.index;
      if (at === start) continue;
      if (best === undefined || Math.abs(at - mid) < Math.abs(best - mid)) best = at;
      if (at > mid) break;
    }
    return best;
  };
  wordSegmenter ??= new Intl.Segmenter(undefined, { granularity: 'word' });
  graphemeSegmenter ??= new Intl.Segmenter(undefined, { granularity: 'grapheme' });
  return nearest(wordSegmenter) ?? nearest(graphemeSegmenter);
}

/** Share of the budget a run of words is cut to, from the range's own token density. */
const WORD_FILL = 0.9;

/**
 * The word level: `range` (which takes `tokens` tokens) cut at whitespace into runs of words of
 * about {@link WORD_FILL} of the budget each, estimated from the range's characters per token.
 * Counting a few runs instead of every word keeps the tokenizer's per-text cost off long texts;
 * a run that still overflows is cut again (at word boundaries), one that fits is packed as is.
 */
function wordChunks(text: string, range: { start: number; end: number }, tokens: number, budget: number): { start: number; end: number }[] {
  const target = Math.max(1, Math.floor(((range.end - range.start) * budget * WORD_FILL) / Math.max(1, tokens)));
  const out: { start: number; end: number }[] = [];
  const space = /\s/;
  let pos = range.start;
  while (pos < range.end) {
    while (pos < range.end && space.test(text[pos]!)) pos++;
    if (pos >= range.end) break;
    let cut = pos + target;
    if (cut >= range.end) {
      out.push({ start: pos, end: range.end });
      break;
    }
    // The nearest whitespace at or before the target, else the first after it.
    let at = cut;
    while (at > pos && !space.test(text[at]!)) at--;
    if (at === pos) {
      at = cut;
      while (at < range.end && !space.test(text[at]!)) at++;
    }
    cut = at;
    let end = cut;
    while (end > pos && space.test(text[end - 1]!)) end--;
    out.push({ start: pos, end });
    pos = cut;
  }
  return out;
}

interface Walk {
  text: string;
  budget: number;
  count: TokenCounter;
  /** Reports that everything before `position` is resolved into units. */
  progress?: (position: number) => Promise<void>;
}

async function unitsWithin(walk: Walk, ranges: { start: number; end: number }[], level: number): Promise<Unit[]> {
  const { text, budget, count } = walk;
  const counts = await countInSteps(
    ranges.map((r) => text.slice(r.start, r.end)),
    count,
    walk.progress ? (done) => walk.progress!(ranges[done - 1]!.start) : undefined,
  );
  const out: Unit[] = [];
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i]!;
    const tokens = counts[i]!;
    if (tokens <= budget) {
      out.push({ ...r, tokens, joint: level >= LEVELS.length - 1 ? 0 : 1 });
    } else {
      // The first finer level that actually breaks this range: a paragraph without sentence
      // punctuation goes straight to words.
      let parts: { start: number; end: number }[] = [];
      let next = level + 1;
      for (; next < LEVELS.length; next++) {
        parts = next === LEVELS.length - 1 ? wordChunks(text, r, tokens, budget) : pieces(text, r.start, r.end, LEVELS[next]!);
        if (parts.length > 1) break;
      }
      if (parts.length > 1) {
        out.push(...(await unitsWithin(walk, parts, next)));
      } else {
        const cut = cutPoint(text, r.start, r.end);
        if (cut === undefined) out.push({ ...r, tokens, joint: 0 });
        else out.push(...(await unitsWithin(walk, [{ start: r.start, end: cut }, { start: cut, end: r.end }], LEVELS.length - 1)));
      }
    }
    await walk.progress?.(r.end);
  }
  return out;
}

/**
 * Splits `text` into passages of at most `budget` tokens (as `count` measures them), packing
 * whole paragraphs together while they fit. A paragraph over the budget is split at sentences,
 * a sentence (or a paragraph without sentence punctuation) at whitespace, and a run without
 * whitespace at word boundaries (Intl.Segmenter); only a single word longer than the budget is
 * cut, between graphemes. Blank text gives no passages.
 */
export async function splitPassages(text: string, budget: number, count: TokenCounter, options: SplitOptions = {}): Promise<Passage[]> {
  if (!Number.isInteger(budget) || budget < 1) throw new RangeError(`budget must be a positive integer, got ${budget}`);
  const onProgress = options.onProgress;
  const breathe = yielder();
  let reported = 0;
  const report = async (fraction: number) => {
    if (!onProgress || fraction <= reported) return;
    reported = fraction;
    onProgress(fraction);
    await breathe();
  };
  const paragraphs = pieces(text, 0, text.length, LEVELS[0]!);
  if (paragraphs.length === 0) {
    onProgress?.(1);
    return [];
  }
  const walk: Walk = { text, budget, count, ...(onProgress ? { progress: (position: number) => report((UNITS_SHARE * position) / text.length) } : {}) };
  const units = await unitsWithin(walk, paragraphs, 0);
  const groups: Unit[][] = [];
  let current: Unit[] = [];
  let used = 0;
  for (const unit of units) {
    // Slack per joint: a paragraph or sentence break may cost a token; the check below catches the rest.
    const cost = unit.tokens + (current.length ? unit.joint : 0);
    if (current.length && used + cost > budget) {
      groups.push(current);
      current = [];
      used = 0;
    }
    used += current.length ? cost : unit.tokens;
    current.push(unit);
  }
  if (current.length) groups.push(current);
  const passages = groups.map((g) => ({ start: g[0]!.start, end: g[g.length - 1]!.end }));
  // Token counts of joined text can differ from the sum of the parts; check, and split what
  // overflows. A passage of one unit was counted as it is already.
  const joined = groups.flatMap((g, i) => (g.length > 1 ? [i] : []));
  const checked = await countInSteps(
    joined.map((i) => text.slice(passages[i]!.start, passages[i]!.end)),
    count,
    onProgress ? (done) => report(UNITS_SHARE + ((1 - UNITS_SHARE) * done) / joined.length) : undefined,
  );
  const totals = groups.map((g) => g[0]!.tokens);
  joined.forEach((i, n) => (totals[i] = checked[n]!));
  const out: Passage[] = [];
  for (let i = 0; i < passages.length; i++) {
    const p = passages[i]!;
    const group = groups[i]!;
    if (totals[i]! > budget && group.length > 1) {
      const half = Math.ceil(group.length / 2);
      for (const part of [group.slice(0, half), group.slice(half)]) {
        const start = part[0]!.start;
        const end = part[part.length - 1]!.end;
        out.push(...(await splitPassages(text.slice(start, end), budget, count)).map((q) => ({ text: q.text, start: q.start + start, end: q.end + start })));
      }
    } else {
      out.push({ text: text.slice(p.start, p.end), start: p.start, end: p.end });
    }
  }
  await report(1);
  return out;
}
