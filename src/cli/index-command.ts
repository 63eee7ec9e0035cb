/**
 * `colbert-web index <files or folders> --model <id|path> --out site/docs.cbwidx [--precision p] [--compression nbits=2,pool=1,rerank=true]`
 *
 * Builds a search index at build time, in Node (onnxruntime-node, native CPU kernels): reads
 * .txt, .md and .html files, splits them into passages within the model's token budget (the
 * splitter the demo uses), encodes them and writes the portable file that `importIndex()` loads
 * in the browser. A thin shell over the public API (`createSearch`, `add`, `exportIndex`).
 *
 * Resumable: every few seconds the index so far is written to `<out>.partial` with the list of
 * finished files in `<out>.partial.json`; a re-run with the same model and precision imports it
 * and encodes only the files not finished (or changed) since. Both are removed once `<out>` is written.
 *
 * With `--compression` the index is built with the compressed index (`createSearch({ compression })`)
 * and, once it has enough tokens to train, the file carries its codec and codes: a browser search
 * with the same nbits and pool factor imports them without training.
 */
import { readFile, readdir, rename, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { basename, dirname, extname, relative, resolve, sep } from 'node:path';
import { parseArgs } from 'node:util';
import { Parser } from 'htmlparser2';
import { crc32 } from '../checksum.ts';
import { checkCompression, type CompressionOptions } from '../compression.ts';
import { ColbertError, isColbertError } from '../errors.ts';
import { createSearch, type ColbertSearch } from '../search.ts';
import { VECTOR_PRECISIONS, type VectorPrecision } from '../store/precision.ts';
import { splitPassages } from '../text/passages.ts';
import { sniffText } from '../text/sniff.ts';

export const USAGE = `Usage: colbert-web index <files or folders...> --model <repo-id|url|path> --out <file.cbwidx> [--precision ${VECTOR_PRECISIONS.join('|')}] [--compression nbits=1|2|4[,pool=1|2|3][,rerank=true|false]] [--revision <rev>] [--hub-url <url>]

Reads .txt, .md and .html files (folders recursively; other files are skipped with the reason),
splits them into passages within the model's token budget, encodes them in Node and writes the
portable index file that importIndex() loads in the browser. An interrupted run, re-run with the
same arguments, continues from <out>.partial instead of encoding everything again.
With --compression the file also carries the trained compressed index (codec and codes), which
a browser search with the same nbits and pool imports without training.`;

/** Parses `--compression nbits=2,pool=1,rerank=true` into the `compression` option (INVALID_ARGUMENT on anything else). */
export function parseCompression(value: string): CompressionOptions {
  const out: Record<string, unknown> = {};
  const names: Record<string, string> = { nbits: 'nbits', pool: 'poolFactor', poolFactor: 'poolFactor', rerank: 'rerank' };
  for (const part of value.split(',').map((p) => p.trim()).filter(Boolean)) {
    const [key = '', raw = '', ...rest] = part.split('=');
    const name = names[key.trim()];
    if (!name || rest.length || raw === '') throw new ColbertError('INVALID_ARGUMENT', `--compression takes nbits=1|2|4, pool=1|2|3, rerank=true|false separated by commas; got ${JSON.stringify(part)}.`, { part });
    const v = raw.trim();
    out[name] = name === 'rerank' ? (v === 'true' ? true : v === 'false' ? false : v) : /^\d+$/.test(v) ? Number(v) : v;
  }
  return checkCompression(out)!;
}

/** Extensions read, and how each becomes text. */
const TEXT_KINDS: Record<string, 'text' | 'html'> = { '.txt': 'text', '.md': 'text', '.markdown': 'text', '.html': 'html', '.htm': 'html' };

/** Elements whose content is not text a reader sees. */
const HIDDEN = new Set(['script', 'style', 'noscript', 'template', 'head', 'svg']);
/** Elements that end a paragraph. */
const BLOCKS = new Set(['p', 'div', 'section', 'article', 'main', 'header', 'footer', 'aside', 'nav', 'li', 'ul', 'ol', 'dl', 'dt', 'dd', 'table', 'tr', 'blockquote', 'pre', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'br', 'hr', 'figure', 'figcaption']);

/** The visible text of an HTML document, paragraphs separated by blank lines (htmlparser2, entities decoded). */
export function htmlToText(html: string): { text: string; title?: string } {
  let text = '';
  let title: string | undefined;
  let hidden = 0;
  let inTitle = false;
  const parser = new Parser(
    {
      onopentag(name) {
        if (name === 'title') inTitle = true;
        if (HIDDEN.has(name)) hidden++;
        if (BLOCKS.has(name)) text += '\n\n';
      },
      ontext(data) {
        if (inTitle) title = (title ?? '') + data;
        else if (hidden === 0) text += data;
      },
      onclosetag(name) {
        if (name === 'title') inTitle = false;
        if (HIDDEN.has(name)) hidden = Math.max(0, hidden - 1);
        if (BLOCKS.has(name)) text += '\n\n';
      },
    },
    { decodeEntities: true },
  );
  parser.write(html);
  parser.end();
  const paragraphs = text.split(/\n\s*\n/).map((p) => p.replace(/\s+/g, ' ').trim()).filter(Boolean);
  const out: { text: string; title?: string } = { text: paragraphs.join('\n\n') };
  const t = title?.replace(/\s+/g, ' ').trim();
  if (t) out.title = t;
  return out;
}

/**
 * The file's text, or why it is not indexed: by name, only .txt, .md and .html are read; by
 * content, the bytes must be text (src/text/sniff.ts, shared with the demo: magic numbers, NUL
 * bytes, encodings), so a renamed image is skipped too.
 */
export async function readableText(path: string, bytes: Uint8Array): Promise<{ text: string } | { skip: string }> {
  if (!(extname(path).toLowerCase() in TEXT_KINDS)) return { skip: 'not a .txt, .md or .html file' };
  const sniffed = await sniffText(bytes, basename(path));
  return sniffed.ok ? { text: sniffed.text } : { skip: sniffed.reason };
}

async function collect(inputs: string[]): Promise<string[]> {
  const files: string[] = [];
  const walk = async (path: string): Promise<void> => {
    const info = await stat(path);
    if (info.isDirectory()) {
      const names = (await readdir(path)).filter((n) => !n.startsWith('.')).sort();
      for (const name of names) await walk(resolve(path, name));
    } else if (info.isFile()) files.push(path);
  };
  for (const input of inputs) await walk(resolve(input));
  return [...new Set(files)];
}

/** What `<out>.partial.json` holds. */
interface Checkpoint {
  model: string;
  precision: string;
  /** The --compression options (absent: none). */
  compression?: CompressionOptions;
  /** Finished files: relative path → CRC-32 of their bytes and how many passages they gave. */
  done: Record<string, { crc: string; passages: number }>;
}

/** Options of {@link indexFiles}. */
export interface IndexCommandOptions {
  model: string;
  out: string;
  precision?: VectorPrecision;
  /** Build the compressed index too; the file then carries its codes (see the module comment). */
  compression?: CompressionOptions;
  revision?: string;
  hubUrl?: string;
  /** Progress and skip lines. Default console.log. */
  log?: (line: string) => void;
  /** Seconds between checkpoints (`<out>.partial`). Default 5; 0 after every file. */
  checkpointSeconds?: number;
  /** Stops after this many files were indexed (tests of resuming). */
  stopAfter?: number;
}

/** What {@link indexFiles} did. */
export interface IndexCommandResult {
  files: number;
  passages: number;
  tokens: number;
  skipped: { file: string; reason: string }[];
  /** Files taken from `<out>.partial` instead of being encoded again. */
  resumed: number;
  /** False when `stopAfter` stopped it before the end (only the partial files were written). */
  complete: boolean;
}

async function writeAtomic(path: string, bytes: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
}

async function readIfExists(path: string): Promise<Uint8Array | null> {
  try {
    return new Uint8Array(await readFile(path));
  } catch {
    return null;
  }
}

/** Indexes files and folders into one portable index file. */
export async function indexFiles(inputs: string[], options: IndexCommandOptions): Promise<IndexCommandResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const out = resolve(options.out);
  const partialPath = `${out}.partial`;
  const checkpointPath = `${out}.partial.json`;
  const precision = options.precision ?? 'fp16';
  const files = await collect(inputs);
  const base = inputs.length === 1 && (await stat(resolve(inputs[0]!))).isDirectory() ? resolve(inputs[0]!) : process.cwd();
  const name = (file: string) => relative(base, file).split(sep).join('/');

  const compression = options.compression === undefined ? undefined : checkCompression(options.compression);
  const config: Parameters<typeof createSearch>[0] = { model: options.model, worker: false, storage: 'memory', precision };
  if (compression) config.compression = compression;
  if (options.revision !== undefined) config.revision = options.revision;
  if (options.hubUrl !== undefined) config.hubUrl = options.hubUrl;
  const search: ColbertSearch = await createSearch(config);
  try {
    const result: IndexCommandResult = { files: 0, passages: 0, tokens: 0, skipped: [], resumed: 0, complete: false };
    let checkpoint: Checkpoint = { model: options.model, precision, done: {} };
    if (compression) checkpoint.compression = compression;
    const saved = await readIfExists(checkpointPath);
    const partial = saved && (await readIfExists(partialPath));
    if (saved && partial) {
      const previous = JSON.parse(new TextDecoder().decode(saved)) as Checkpoint;
      if (previous.model === options.model && previous.precision === precision && JSON.stringify(previous.compression ?? null) === JSON.stringify(compression ?? null)) {
        await search.importIndex(partial);
        checkpoint = previous;
        log(`Resuming from ${relative(process.cwd(), partialPath)}: ${Object.keys(previous.done).length} file(s) already indexed.`);
      } else {
        log(`Ignoring ${relative(process.cwd(), partialPath)}: it was built with another model, precision or compression.`);
      }
    }
    const budget = search.info.documentTextBudget;
    log(`Indexing ${files.length} file(s) with ${search.info.model} on ${search.info.runtime} (${search.dtype}), ${budget} tokens per passage, ${precision} vectors`);
    const started = performance.now();
    let lastCheckpoint = performance.now();
    const every = (options.checkpointSeconds ?? 5) * 1000;
    const save = async (): Promise<void> => {
      await mkdir(dirname(out), { recursive: true });
      await writeAtomic(partialPath, await search.exportIndex());
      await writeAtomic(checkpointPath, JSON.stringify(checkpoint));
      lastCheckpoint = performance.now();
    };
    let changed = false;
    for (const [i, file] of files.entries()) {
      const id = name(file);
      const bytes = new Uint8Array(await readFile(file));
      const readable = await readableText(file, bytes);
      if ('skip' in readable) {
        result.skipped.push({ file: id, reason: readable.skip });
        log(`  skip ${id}: ${readable.skip}`);
        continue;
      }
      const crc = crc32(bytes).toString(16).padStart(8, '0');
      const previous = checkpoint.done[id];
      if (previous?.crc === crc) {
        result.resumed++;
        continue;
      }
      if (options.stopAfter !== undefined && result.files >= options.stopAfter) {
        if (changed) await save();
        return result;
      }
      // A file changed since the partial run: its old passages go before the new ones come in.
      if (previous !== undefined) {
        await search.delete(Array.from({ length: previous.passages }, (_, n) => `${id}#${n}`));
        delete checkpoint.done[id];
      }
      const source = readable.text;
      const kind = TEXT_KINDS[extname(file).toLowerCase()]!;
      const { text, title } = kind === 'html' ? htmlToText(source) : { text: source, title: undefined };
      const passages = await splitPassages(text, budget, (t) => search.countTokens(t));
      if (passages.length) {
        const added = await search.add(
          passages.map((p, n) => ({ id: `${id}#${n}`, text: p.text, metadata: { file: id, passage: n, start: p.start, end: p.end, ...(title ? { title } : {}) } })),
        );
        result.tokens += added.tokens;
      }
      result.files++;
      result.passages += passages.length;
      checkpoint.done[id] = { crc, passages: passages.length };
      changed = true;
      const seconds = (performance.now() - started) / 1000;
      log(`  [${i + 1}/${files.length}] ${id}: ${passages.length} passage(s); ${result.passages} passages, ${result.tokens} tokens, ${(result.tokens / Math.max(seconds, 1e-3)).toFixed(0)} tokens/s`);
      if (performance.now() - lastCheckpoint >= every) await save();
    }
    await mkdir(dirname(out), { recursive: true });
    const file = await search.exportIndex();
    await writeAtomic(out, file);
    await rm(partialPath, { force: true });
    await rm(checkpointPath, { force: true });
    const stats = await search.stats();
    log(`Wrote ${relative(process.cwd(), out) || out}: ${stats.documents} passages from ${Object.keys(checkpoint.done).length} file(s), ${(file.byteLength / 1e6).toFixed(2)} MB${result.skipped.length ? `; skipped ${result.skipped.length}` : ''}.`);
    if (stats.compression) {
      const c = stats.compression;
      log(
        c.state === 'ready'
          ? `  compressed index: ${c.centroids} centroids trained for ${c.trainedTokens} tokens, nbits ${c.nbits}, pool ${c.poolFactor}; the file carries its codes.`
          : `  compressed index: not trained (${stats.tokens} tokens; it trains from 4096): the file carries no codes, the browser trains once it has enough.`,
      );
    }
    result.complete = true;
    return result;
  } finally {
    await search.close();
  }
}

/** `colbert-web index ...`: argv after the command name; resolves to the exit code. */
export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { model: { type: 'string', short: 'm' }, out: { type: 'string', short: 'o' }, precision: { type: 'string' }, compression: { type: 'string' }, revision: { type: 'string' }, 'hub-url': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    console.log(USAGE);
    return 0;
  }
  const { model, out, precision } = parsed.values;
  if (!parsed.positionals.length || model === undefined || out === undefined) {
    console.error(USAGE);
    return 2;
  }
  if (precision !== undefined && !(VECTOR_PRECISIONS as readonly string[]).includes(precision)) {
    console.error(`Unknown precision ${JSON.stringify(precision)}; use ${VECTOR_PRECISIONS.join(', ')}.`);
    return 2;
  }
  const options: IndexCommandOptions = { model, out };
  if (precision !== undefined) options.precision = precision as VectorPrecision;
  if (parsed.values.compression !== undefined) {
    try {
      options.compression = parseCompression(parsed.values.compression);
    } catch (err) {
      console.error((err as Error).message);
      return 2;
    }
  }
  if (parsed.values.revision !== undefined) options.revision = parsed.values.revision;
  if (parsed.values['hub-url'] !== undefined) options.hubUrl = parsed.values['hub-url'];
  try {
    const result = await indexFiles(parsed.positionals, options);
    return result.files + result.resumed > 0 ? 0 : 1;
  } catch (err) {
    console.error(`colbert-web index failed: ${isColbertError(err) ? `[${err.code}] ` : ''}${(err as Error).message}`);
    return 1;
  }
}
