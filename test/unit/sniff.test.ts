/**
 * sniffText: text files come back decoded, binaries (known by their magic number or by NUL
 * bytes and control characters) come back refused with a reason naming the file.
 */
import { describe, expect, it } from 'vitest';
import { deflateRawSync } from 'node:zlib';
import { sniffText } from '../../src/text/sniff.ts';
import { mulberry32 } from '../support/rng.ts';

const bytes = (...parts: (number[] | string | Uint8Array)[]): Uint8Array => {
  const chunks = parts.map((p) => (typeof p === 'string' ? new TextEncoder().encode(p) : Uint8Array.from(p)));
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
};

/** The first 64 bytes of a 64-bit little-endian ELF executable header, then some code-like bytes. */
function elf(): Uint8Array {
  const header = new Uint8Array(64 + 256);
  header.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0);
  header.set([2, 0, 0x3e, 0, 1, 0, 0, 0], 16); // ET_EXEC, x86-64, version 1
  const rand = mulberry32(7);
  for (let i = 64; i < header.length; i++) header[i] = Math.floor(rand() * 256);
  return header;
}

/** A real 1×1 PNG: signature, IHDR, IDAT, IEND (CRCs not checked by sniffing). */
const PNG = bytes([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], [0, 0, 0, 13], 'IHDR', [0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89], [0, 0, 0, 0], 'IEND', [0xae, 0x42, 0x60, 0x82]);

/** A zip with one stored file. */
function zip(): Uint8Array {
  const name = 'hello.txt';
  const data = deflateRawSync(Buffer.from('hello world'));
  const local = bytes([0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0], [data.length, 0, 0, 0, 11, 0, 0, 0, name.length, 0, 0, 0], name, data);
  return local;
}

describe('sniffText', () => {
  it('refuses an ELF executable renamed x.txt, naming the file and the format', async () => {
    const r = await sniffText(elf(), 'x.txt');
    expect(r).toMatchObject({ ok: false, kind: 'binary-format', format: 'application/x-elf' });
    expect(!r.ok && r.reason).toBe('x.txt is an ELF executable, not text');
  });

  it('refuses images, PDFs and archives by their magic number', async () => {
    expect(await sniffText(PNG, 'pic.md')).toMatchObject({ ok: false, kind: 'binary-format', format: 'image/png', reason: 'pic.md is a PNG image, not text' });
    expect(await sniffText(bytes('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n'), 'paper.txt')).toMatchObject({ ok: false, format: 'application/pdf', reason: 'paper.txt is a PDF document, not text' });
    expect(await sniffText(zip(), 'notes.txt')).toMatchObject({ ok: false, kind: 'binary-format', format: 'application/zip' });
  });

  it('refuses random bytes (an unknown binary) without a name as "this file"', async () => {
    const rand = mulberry32(42);
    const noise = Uint8Array.from({ length: 4096 }, () => Math.floor(rand() * 256));
    const r = await sniffText(noise);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(/^this file (is|looks) binary, not text/);
  });

  it('refuses NUL-free binary noise by its control characters', async () => {
    const rand = mulberry32(3);
    const noise = Uint8Array.from({ length: 4096 }, () => 1 + Math.floor(rand() * 255));
    const r = await sniffText(noise, 'blob.txt');
    expect(r).toMatchObject({ ok: false, kind: 'control-characters' });
    expect(!r.ok && r.reason).toMatch(/^blob\.txt looks binary, not text: it is not valid UTF-8 and, read as Latin-1, \d+ of its first 4096 characters are control characters$/);
  });

  it('accepts UTF-8 text with accents, CJK and emoji, and drops a UTF-8 byte-order mark', async () => {
    const text = 'Notes en français : la traînée d’un profil, café 東京 🚀.\n\tIndented line\r\nform\ffeed';
    expect(await sniffText(new TextEncoder().encode(text), 'café.md')).toEqual({ ok: true, text, encoding: 'utf-8' });
    expect(await sniffText(bytes([0xef, 0xbb, 0xbf], text))).toEqual({ ok: true, text, encoding: 'utf-8' });
  });

  it('accepts UTF-16 LE and BE with a byte-order mark', async () => {
    const text = 'Déjà vu, 東京 🚀';
    const le = new Uint8Array(2 + text.length * 2);
    const be = new Uint8Array(2 + text.length * 2);
    le.set([0xff, 0xfe]);
    be.set([0xfe, 0xff]);
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      le.set([c & 0xff, c >> 8], 2 + i * 2);
      be.set([c >> 8, c & 0xff], 2 + i * 2);
    }
    expect(await sniffText(le)).toEqual({ ok: true, text, encoding: 'utf-16le' });
    expect(await sniffText(be)).toEqual({ ok: true, text, encoding: 'utf-16be' });
  });

  it('refuses binary bytes after a UTF-16 byte-order mark (lone surrogates)', async () => {
    const rand = mulberry32(11);
    const noise = Uint8Array.from({ length: 4096 }, (_, i) => (i === 0 ? 0xff : i === 1 ? 0xfe : Math.floor(rand() * 256)));
    expect(await sniffText(noise, 'fake.txt')).toMatchObject({ ok: false, kind: 'invalid-utf16', reason: 'fake.txt is binary, not text: it starts like UTF-16LE text but is not valid UTF-16LE' });
  });

  it('refuses UTF-16 without a byte-order mark (NUL bytes) and says why', async () => {
    const le = new Uint8Array(40);
    for (let i = 0; i < 20; i++) le[i * 2] = 0x61 + (i % 26);
    const r = await sniffText(le, 'u16.txt');
    expect(r).toMatchObject({ ok: false, kind: 'nul-bytes' });
    expect(!r.ok && r.reason).toContain('u16.txt is binary, not text: it contains NUL bytes');
  });

  it('reads Latin-1 text that is not valid UTF-8 as Windows-1252', async () => {
    const latin1 = Uint8Array.from([...'caf', 0xe9, ...' na', 0xef, ...'ve'].map((c) => (typeof c === 'string' ? c.charCodeAt(0) : c)));
    expect(await sniffText(latin1)).toEqual({ ok: true, text: 'café naïve', encoding: 'windows-1252' });
  });

  it('tolerates a few control characters (an ANSI colour code in a log) and text formats file-type knows', async () => {
    const log = `${'build ok '.repeat(100)}\u001b[32mgreen\u001b[0m\n`;
    expect(await sniffText(new TextEncoder().encode(log))).toMatchObject({ ok: true, text: log });
    const xml = '<?xml version="1.0"?>\n<note>Heat transfer</note>\n';
    expect(await sniffText(new TextEncoder().encode(xml), 'a.xml')).toMatchObject({ ok: true, text: xml });
    expect(await sniffText(new Uint8Array(0))).toEqual({ ok: true, text: '', encoding: 'utf-8' });
  });
});
