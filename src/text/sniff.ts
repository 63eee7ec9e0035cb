/**
 * Is this file text? Decides from the bytes, never from the name: a renamed executable, an image,
 * a PDF or a zip is recognised by its magic number (the `file-type` library's browser-safe core),
 * and an unknown binary by what text never has: NUL bytes, bytes that are not valid in any of the
 * accepted encodings, or many control characters. Shared by the demo (files dropped on the page)
 * and the `colbert-web index` command, so both skip the same files for the same reasons.
 *
 * Accepted encodings: UTF-8 (with or without a byte-order mark), UTF-16 LE/BE with a byte-order
 * mark, and Windows-1252 (Latin-1) for older files that are not valid UTF-8.
 */
import { fileTypeFromBuffer } from 'file-type/core';

/** Why a file was judged not to be text. */
export type SniffFailure =
  /** A known binary format (magic number): `format` says which. */
  | 'binary-format'
  /** NUL bytes, which text files do not contain. */
  | 'nul-bytes'
  /** Too many control characters for text. */
  | 'control-characters'
  /** A UTF-16 byte-order mark followed by bytes that are not UTF-16. */
  | 'invalid-utf16';

export type SniffResult =
  | { ok: true; text: string; encoding: 'utf-8' | 'utf-16le' | 'utf-16be' | 'windows-1252' }
  | { ok: false; reason: string; kind: SniffFailure; format?: string };

/**
 * Formats `file-type` recognises that are text all the same: they go through the text checks
 * like any other file instead of being refused for their magic number.
 */
const TEXT_FORMATS = new Set(['application/xml', 'application/rtf', 'text/calendar', 'text/vcard', 'text/vtt']);

/** Share of control characters (other than tab, line feed, carriage return, form feed) text may have. */
const MAX_CONTROL_SHARE = 0.01;
/** How much of the text the control-character count looks at. */
const CONTROL_SAMPLE = 1 << 16;

/** Readable names for the formats a visitor is most likely to drop by mistake. */
const FORMAT_NAMES: Record<string, string> = {
  elf: 'an ELF executable',
  exe: 'a Windows executable',
  macho: 'a Mach-O executable',
  pdf: 'a PDF document',
  zip: 'a zip archive',
  gz: 'a gzip archive',
  docx: 'a Word document',
  xlsx: 'an Excel workbook',
  pptx: 'a PowerPoint presentation',
  png: 'a PNG image',
  jpg: 'a JPEG image',
  gif: 'a GIF image',
  webp: 'a WebP image',
  wasm: 'a WebAssembly module',
  sqlite: 'an SQLite database',
};

function describeFormat(ext: string, mime: string): string {
  return FORMAT_NAMES[ext] ?? `a .${ext} file (${mime})`;
}

/** Characters below U+0020 (except \t \n \r \f) and U+007F–U+009F, counted in the first `CONTROL_SAMPLE` characters. */
function controlShare(text: string): { count: number; sample: number } {
  const sample = Math.min(text.length, CONTROL_SAMPLE);
  let count = 0;
  for (let i = 0; i < sample; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && c !== 0x0c) || (c >= 0x7f && c <= 0x9f)) count++;
  }
  return { count, sample };
}

type Encoding = 'utf-8' | 'utf-16le' | 'utf-16be' | 'windows-1252';

/** The UTF-16 byte order its byte-order mark announces, if any. */
function utf16Bom(bytes: Uint8Array): 'utf-16le' | 'utf-16be' | undefined {
  if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xfe) return 'utf-16le';
  if (bytes.length >= 2 && bytes[0] === 0xfe && bytes[1] === 0xff) return 'utf-16be';
  return undefined;
}

/** Text without NUL bytes: UTF-8 when valid (a byte-order mark dropped), Windows-1252 otherwise. */
function decode8(bytes: Uint8Array): { text: string; encoding: Encoding } {
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes), encoding: 'utf-8' };
  } catch {
    return { text: new TextDecoder('windows-1252').decode(bytes), encoding: 'windows-1252' };
  }
}

/**
 * The text of `bytes` when they are text, or why not. `name` only labels the reason ("x.txt is
 * an ELF executable, not text"); the decision is the content's. Empty input is text (`''`): what
 * to do with an empty file is the caller's call.
 */
export async function sniffText(bytes: Uint8Array, name?: string): Promise<SniffResult> {
  const label = name ?? 'this file';
  let decoded: { text: string; encoding: Encoding };
  const bom = utf16Bom(bytes);
  if (bom) {
    // Before the magic numbers: FF FE also reads as an MPEG audio frame header.
    try {
      decoded = { text: new TextDecoder(bom, { fatal: true }).decode(bytes.subarray(2)), encoding: bom };
    } catch {
      return { ok: false, kind: 'invalid-utf16', reason: `${label} is binary, not text: it starts like ${bom.toUpperCase()} text but is not valid ${bom.toUpperCase()}` };
    }
  } else {
    const type = bytes.length ? await fileTypeFromBuffer(bytes) : undefined;
    if (type && !TEXT_FORMATS.has(type.mime)) {
      return { ok: false, kind: 'binary-format', format: type.mime, reason: `${label} is ${describeFormat(type.ext, type.mime)}, not text` };
    }
    if (bytes.includes(0)) {
      return { ok: false, kind: 'nul-bytes', reason: `${label} is binary, not text: it contains NUL bytes (UTF-16 text needs a byte-order mark)` };
    }
    decoded = decode8(bytes);
  }
  const { count, sample } = controlShare(decoded.text);
  if (count > 0 && count > sample * MAX_CONTROL_SHARE) {
    const what = decoded.encoding === 'windows-1252' ? 'it is not valid UTF-8 and, read as Latin-1, ' : '';
    return { ok: false, kind: 'control-characters', reason: `${label} looks binary, not text: ${what}${count} of its first ${sample} characters are control characters` };
  }
  return { ok: true, text: decoded.text, encoding: decoded.encoding };
}
