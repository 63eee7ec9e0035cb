/**
 * Access to ../shared (present on project machines and in CI, absent on users' machines).
 * Tests that need it skip with {@link SHARED_MISSING} as their reason.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/** Repository root. */
export const REPO_ROOT = resolve(import.meta.dirname, '../..');
/** ../shared beside the checkout. */
export const SHARED_DIR = resolve(REPO_ROOT, '../shared');
/** The real ModernBERT tokenizer files. */
export const TOKENIZER_DIR = resolve(SHARED_DIR, 'fixtures/modernbert-tokenizer');
/** The Cranfield collection. */
export const CRANFIELD_DIR = resolve(SHARED_DIR, 'fixtures/cranfield');
/** True when the shared fixtures are here. */
export const HAVE_SHARED = existsSync(resolve(TOKENIZER_DIR, 'tokenizer.json')) && existsSync(resolve(CRANFIELD_DIR, 'cran.all.1400'));
/** Why shared-dependent tests skip. */
export const SHARED_MISSING = `skipped: ../shared/fixtures not found at ${SHARED_DIR} (it exists on project machines and in CI only)`;

/** PyLate's two added tokens, with the ids the ColBERT-Zero checkpoints give them. */
export const PYLATE_TOKENS = [
  { id: 50368, content: '[Q] ' },
  { id: 50369, content: '[D] ' },
] as const;

/** The real tokenizer.json / tokenizer_config.json with PyLate's `[Q] ` and `[D] ` added (as PyLate saves them). */
export function loadPylateTokenizerFiles(dir = TOKENIZER_DIR): { tokenizerJson: Record<string, unknown>; tokenizerConfig: Record<string, unknown> } {
  const tokenizerJson = JSON.parse(readFileSync(resolve(dir, 'tokenizer.json'), 'utf8')) as Record<string, unknown> & { added_tokens: unknown[] };
  const tokenizerConfig = JSON.parse(readFileSync(resolve(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown> & { added_tokens_decoder: Record<string, unknown> };
  for (const { id, content } of PYLATE_TOKENS) {
    const token = { content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false };
    tokenizerJson.added_tokens.push({ id, ...token });
    tokenizerConfig.added_tokens_decoder[String(id)] = token;
  }
  return { tokenizerJson, tokenizerConfig };
}
