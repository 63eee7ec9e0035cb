/**
 * Words for the lexical index: Unicode word segmentation (`Intl.Segmenter`), case and accent
 * folding (NFKD, combining marks dropped, lower case), and for English a stop-word list and the
 * Porter stemmer (the `stemmer` package). Other languages are segmented and folded, not stemmed.
 * These are the document's words, not the model's sub-word pieces.
 */
import { stemmer } from 'stemmer';
import { ColbertError } from '../errors.ts';

/** How texts are turned into index terms; fixed per index when it is created. */
export interface LexicalConfig {
  /** BCP 47 language tag for word segmentation. */
  language: string;
  /** Porter stemming (English only). */
  stemming: boolean;
  /** Drop English stop words (English only). */
  stopWords: boolean;
}

/** What callers may set (`lexical` option of createSearch). */
export interface LexicalOptions {
  /** BCP 47 language of the texts, for word segmentation. Default 'en'. */
  language?: string;
  /** English only: Porter stemming ("flows" and "flowing" both index as "flow"). Default true for English. */
  stemming?: boolean;
  /** English only: leave out stop words ("the", "of", ...). Default true for English. */
  stopWords?: boolean;
}

/** Lucene's English stop-word set. */
const ENGLISH_STOP_WORDS = new Set(
  'a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with'.split(' '),
);

/** Whether a language tag is English ('en', 'en-GB', ...). */
function isEnglish(language: string): boolean {
  return /^en(?:-|$)/i.test(language);
}

/** Validates lexical options and fills in the defaults. */
export function resolveLexicalConfig(options: unknown): LexicalConfig {
  if (options === undefined) return { language: 'en', stemming: true, stopWords: true };
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new ColbertError('INVALID_ARGUMENT', 'The lexical option must be an object like { language: "en", stemming: true }.');
  const { language = 'en', stemming, stopWords } = options as LexicalOptions;
  if (typeof language !== 'string') throw new ColbertError('INVALID_ARGUMENT', `lexical.language must be a BCP 47 tag such as "en" or "fr"; got ${JSON.stringify(language)}.`, { language });
  let canonical: string;
  try {
    canonical = Intl.getCanonicalLocales(language)[0]!;
  } catch {
    throw new ColbertError('INVALID_ARGUMENT', `lexical.language ${JSON.stringify(language)} is not a valid BCP 47 language tag.`, { language });
  }
  for (const [key, value] of [['stemming', stemming], ['stopWords', stopWords]] as const) {
    if (value !== undefined && typeof value !== 'boolean') throw new ColbertError('INVALID_ARGUMENT', `lexical.${key} must be true or false; got ${JSON.stringify(value)}.`, { [key]: value });
  }
  const english = isEnglish(canonical);
  return { language: canonical, stemming: english && (stemming ?? true), stopWords: english && (stopWords ?? true) };
}

/** Whether two configs index text the same way. */
export function sameLexicalConfig(a: LexicalConfig, b: LexicalConfig): boolean {
  return a.language === b.language && a.stemming === b.stemming && a.stopWords === b.stopWords;
}

const segmenters = new Map<string, Intl.Segmenter>();

/** Folds one word: compatibility decomposition, combining marks dropped, lower case, apostrophes unified. */
export function foldWord(word: string): string {
  return word.normalize('NFKD').replace(/\p{M}+/gu, '').toLowerCase().replace(/[\u2019\u02bc]/g, "'");
}

/** The index terms of a text, in order (a term repeats as often as its word does). */
export function analyze(text: string, config: LexicalConfig): string[] {
  let segmenter = segmenters.get(config.language);
  if (!segmenter) {
    segmenter = new Intl.Segmenter(config.language, { granularity: 'word' });
    segmenters.set(config.language, segmenter);
  }
  const english = isEnglish(config.language);
  const terms: string[] = [];
  for (const { segment, isWordLike } of segmenter.segment(text)) {
    if (!isWordLike) continue;
    let word = foldWord(segment);
    if (english) word = word.replace(/'s$/, '').replace(/'/g, '');
    if (!word) continue;
    if (config.stopWords && ENGLISH_STOP_WORDS.has(word)) continue;
    terms.push(config.stemming && /^[a-z]+$/.test(word) ? stemmer(word) : word);
  }
  return terms;
}

/** Term frequencies of a text, and its length in terms. */
export function termFrequencies(text: string, config: LexicalConfig): { tf: Map<string, number>; length: number } {
  const terms = analyze(text, config);
  const tf = new Map<string, number>();
  for (const t of terms) tf.set(t, (tf.get(t) ?? 0) + 1);
  return { tf, length: terms.length };
}
