/**
 * Splits long documents into passages that the model encodes whole: paragraphs are packed
 * together up to a token budget (the model's document length minus prompt, specials and marker);
 * a paragraph over the budget is split at sentences, a sentence over it at words. Passages keep
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

async function unitsWithin(text: string, ranges: { start: number; end: number }[], budget: number, count: TokenCounter, level: number): Promise<Unit[]> {
  const counts = await count(ranges.map((r) => text.slice(r.start, r.end)));
  const out: Unit[] = [];
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i]!;
    const tokens = counts[i]!;
    if (tokens <= budget) {
      out.push({ ...r, tokens });
      continue;
    }
    const next = LEVELS[level + 1];
    const parts = next ? pieces(text, r.start, r.end, next) : [];
    if (parts.length > 1) {
      out.push(...(await unitsWithin(text, parts, budget, count, level + 1)));
    } else if (r.end - r.start > 1) {
      // One unbreakable run (a long URL, text without spaces): cut it in halves by characters.
      const mid = r.start + Math.floor((r.end - r.start) / 2);
      out.push(...(await unitsWithin(text, [{ start: r.start, end: mid }, { start: mid, end: r.end }], budget, count, LEVELS.length - 1)));
    } else {
      out.push({ ...r, tokens });
    }
  }
  return out;
}

/**
 * Splits `text` into passages of at most `budget` tokens (as `count` measures them), packing
 * whole paragraphs together while they fit. Blank text gives no passages.
 */
export async function splitPassages(text: string, budget: number, count: TokenCounter): Promise<Passage[]> {
  if (!Number.isInteger(budget) || budget < 1) throw new RangeError(`budget must be a positive integer, got ${budget}`);
  const paragraphs = pieces(text, 0, text.length, LEVELS[0]!);
  if (paragraphs.length === 0) return [];
  const units = await unitsWithin(text, paragraphs, budget, count, 0);
  const groups: Unit[][] = [];
  let current: Unit[] = [];
  let used = 0;
  for (const unit of units) {
    // One token of slack per joint: the separator between two units may cost a token.
    const cost = unit.tokens + (current.length ? 1 : 0);
    if (current.length && used + cost > budget) {
      groups.push(current);
      current = [];
      used = 0;
    }
    used += current.length ? unit.tokens + 1 : unit.tokens;
    current.push(unit);
  }
  if (current.length) groups.push(current);
  const passages = groups.map((g) => ({ start: g[0]!.start, end: g[g.length - 1]!.end }));
  // Token counts of joined text can differ from the sum of the parts; check, and split what overflows.
  const totals = await count(passages.map((p) => text.slice(p.start, p.end)));
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
  return out;
}
