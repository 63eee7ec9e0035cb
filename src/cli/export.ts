/**
 * `colbert-web export --to <target> --index <file> --out <dir> [--name <name>] [--batch-size <n>] [--omit-text]`
 *
 * A thin shell over {@link exportFileFor}: reads an index file (from `exportIndex()`), writes
 * `<out>/definition.json` (Vespa: `<out>/schemas/<name>.sd`), `<out>/documents.jsonl` (streamed,
 * one request body or feed operation per line) and `<out>/query.txt`. Needs no model.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { parseArgs } from 'node:util';
import { isColbertError } from '../errors.ts';
import { EXPORT_TARGETS, exportFileFor, type ExportOptions, type ExportTarget } from '../export/index.ts';

export const USAGE = `Usage: colbert-web export --to <${EXPORT_TARGETS.join('|')}> --index <file> --out <dir> [--name <name>] [--batch-size <n>] [--omit-text]

Writes an index file (from exportIndex()) as a server engine's own requests:
  <out>/definition.json    the collection / index / mapping to create first (Vespa: <out>/schemas/<name>.sd)
  <out>/documents.jsonl    the documents, one request body (or feed operation) per line
  <out>/query.txt          a matching query for that engine`;

/** Runs the export command (argv after "export"); resolves to the exit code. */
export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { to: { type: 'string' }, index: { type: 'string' }, out: { type: 'string', short: 'o' }, name: { type: 'string' }, 'batch-size': { type: 'string' }, 'omit-text': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  if (v.to === undefined || v.index === undefined || v.out === undefined) {
    console.error(USAGE);
    return 2;
  }
  if (!EXPORT_TARGETS.includes(v.to as ExportTarget)) {
    console.error(`Unknown target ${JSON.stringify(v.to)}; use ${EXPORT_TARGETS.join(', ')}.`);
    return 2;
  }
  const options: ExportOptions = {};
  if (v.name !== undefined) options.name = v.name;
  if (v['batch-size'] !== undefined) options.batchSize = Number(v['batch-size']);
  if (v['omit-text']) options.omitText = true;
  const out = resolve(v.out);
  try {
    const exported = await exportFileFor(await readFile(resolve(v.index)), v.to as ExportTarget, options);
    await mkdir(out, { recursive: true });
    const definitionPath = exported.target === 'vespa' ? join(out, ...exported.definition.path.split('/')) : join(out, 'definition.json');
    if (exported.target === 'vespa') await mkdir(join(out, 'schemas'), { recursive: true });
    await writeFile(definitionPath, typeof exported.definition.body === 'string' ? exported.definition.body : `${JSON.stringify(exported.definition, null, 2)}\n`);
    await pipeline(Readable.fromWeb(exported.documents as unknown as NodeReadableStream<Uint8Array>), createWriteStream(join(out, 'documents.jsonl')));
    await writeFile(join(out, 'query.txt'), `Feed: ${exported.feed.method} ${exported.feed.path} (${exported.feed.format})\n\nQuery:\n${exported.query}\n`);
    console.log(`Exported ${exported.documentCount} documents for ${exported.target} to ${out}`);
    return 0;
  } catch (err) {
    console.error(`colbert-web export failed: ${isColbertError(err) ? `[${err.code}] ` : ''}${(err as Error).message}`);
    return 1;
  }
}
