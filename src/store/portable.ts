/**
 * The portable index file: one versioned binary holding the manifest, the documents (ids,
 * hashes, metadata, texts) and the packed vectors, each section with a CRC-32, so an index built
 * once (in a browser, or in Node at build time) ships as a static file. Pure bytes in, bytes out:
 * no IndexedDB, runs anywhere.
 *
 * Layout (all integers little-endian):
 * ```
 * 0   "CBWEBIDX"                      magic, 8 bytes
 * 8   u32 format version              FORMAT_VERSION of ./manifest.ts
 * 12  u32 H                           header length in bytes
 * 16  header: UTF-8 JSON              { manifest, totalBytes, sections: [{ kind, offset, length, crc, ... }] }
 * 16+H u32 CRC-32 of the header
 * ... sections at 8-byte aligned offsets:
 *     'documents': UTF-8 JSON array [{ id, hash, metadata?, text? }] in shard order
 *     'shard':     u32 offsets[docs + 1] | i32 tokenIds[rows] | vectors (precision) | f32 scales[rows] (int8),
 *                  each part 4-byte aligned
 *     format 2 and later, after the shards, when the compressed index was trained (all or none):
 *     'codec':     f16 centroids[centroids * dim] (padded to 4 bytes) | f32 cutoffs[2^nbits - 1] |
 *                  f32 weights[2^nbits] | f32 coarse[groups * dim] | u32 starts[groups + 1]; the header
 *                  entry holds nbits, poolFactor, centroids, groups, trainedTokens and centroidBits: 16
 *                  (../store/residual.ts has the codec layout). Files written before centroidBits
 *                  existed hold f32 centroids there (no centroidBits); they are read and rounded to f16.
 *     'codes':     one per shard, in shard order: u16 codes[rows] | residual bytes[rows * residualBytes],
 *                  4-byte aligned; row r is the shard's row r
 * ```
 * A file without codes is written as format 1, which older versions read.
 * The first five fields (magic, version, H, header, header CRC) are the frame every format version
 * keeps, so that a reader tells a newer file from a damaged one.
 * Reading checks the magic, the version, every checksum and every size before returning
 * anything, so a corrupted or truncated file is rejected whole (INDEX_CORRUPT), never half-read.
 */
import { bytesOf, crc32 } from '../checksum.ts';
import { ColbertError, isColbertError } from '../errors.ts';
import { checkManifest, FORMAT_VERSION, FORMAT_VERSION_WITHOUT_CODES, type IndexManifest } from './manifest.ts';
import { metadataJson } from './metadata.ts';
import type { PackedVectors, VectorPrecision } from './precision.ts';
import { halfCentroids, RESIDUAL_BITS, residualBytes, type ResidualBits } from './residual.ts';
import type { IndexSnapshot, SnapshotCodes } from './types.ts';

/** The file's first 8 bytes. */
export const PORTABLE_MAGIC = 'CBWEBIDX';

/** Suggested file extension for exported indexes. */
export const PORTABLE_EXTENSION = '.cbwidx';

interface SectionHeader {
  kind: 'documents' | 'shard' | 'codec' | 'codes';
  offset: number;
  length: number;
  crc: number;
  /** shard only */
  docs?: number;
  /** shard and codes */
  rows?: number;
  /** codec only */
  nbits?: number;
  poolFactor?: number;
  centroids?: number;
  groups?: number;
  trainedTokens?: number;
  /** codec only: 16 (IEEE half centroids); absent in files that hold f32 centroids. */
  centroidBits?: number;
}

/** Byte offsets of a codec section's parts. */
function codecParts(centroids: number, groups: number, dim: number, nbits: number, centroidBits: 16 | 32) {
  const cutoffs = align(centroids * dim * (centroidBits / 8), 4);
  const weights = cutoffs + ((1 << nbits) - 1) * 4;
  const coarse = weights + (1 << nbits) * 4;
  const starts = coarse + groups * dim * 4;
  return { centroids: 0, cutoffs, weights, coarse, starts, end: starts + (groups + 1) * 4 };
}

/** Byte offsets of a codes section's parts. */
function codesParts(rows: number, dim: number, nbits: ResidualBits) {
  const residuals = align(rows * 2, 4);
  return { codes: 0, residuals, end: residuals + rows * residualBytes(dim, nbits) };
}

interface FileHeader {
  manifest: IndexManifest;
  totalBytes: number;
  sections: SectionHeader[];
}

const align = (n: number, to: number): number => Math.ceil(n / to) * to;

function checkLittleEndian(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new ColbertError('UNSUPPORTED_ENVIRONMENT', 'Portable index files are little-endian; this host is big-endian.');
  }
}

function elementBytes(precision: VectorPrecision): number {
  return precision === 'fp32' ? 4 : precision === 'fp16' ? 2 : 1;
}

/** Byte offsets of a shard section's parts, relative to the section. */
function shardParts(docs: number, rows: number, dim: number, precision: VectorPrecision) {
  const offsets = 0;
  const tokenIds = align(offsets + (docs + 1) * 4, 4);
  const vectors = align(tokenIds + rows * 4, 4);
  const scales = align(vectors + rows * dim * elementBytes(precision), 4);
  const end = precision === 'int8' ? scales + rows * 4 : scales;
  return { offsets, tokenIds, vectors, scales, end };
}

/** The documents section as JSON; metadata that is not JSON data (stored by an older version) is INVALID_METADATA naming the document. */
function documentsJson(documents: IndexSnapshot['documents']): string {
  try {
    return JSON.stringify(documents);
  } catch (err) {
    const bad = documents.find((d) => metadataJson(d.metadata) === undefined);
    const id = bad?.id ?? '?';
    throw new ColbertError('INVALID_METADATA', `Document "${id}" holds metadata that cannot be written to an index file (${(err as Error).message}); it was stored by an older colbert-web. Add it again with JSON metadata (or delete it), then export again.`, { id }, { cause: err });
  }
}

/** Serialises a snapshot into one portable file. */
export function writePortable(snapshot: IndexSnapshot): Uint8Array {
  checkLittleEndian();
  const { manifest } = snapshot;
  const encoder = new TextEncoder();
  const docsBytes = encoder.encode(documentsJson(snapshot.documents));
  // Checksums are laid out at their widest (10 digits) and filled in once the sections are written.
  const sections: SectionHeader[] = [{ kind: 'documents', offset: 0, length: docsBytes.length, crc: 0xffffffff }];
  for (const s of snapshot.shards) {
    const rows = s.tokenIds.length;
    sections.push({ kind: 'shard', offset: 0, length: shardParts(s.docIds.length, rows, manifest.dim, manifest.precision).end, crc: 0xffffffff, docs: s.docIds.length, rows });
  }
  const compression = snapshot.compression;
  if (compression) {
    const { codec, tree, trainedTokens, poolFactor } = compression.codec;
    const centroids = codec.centroids.length / codec.dim;
    const groups = tree.starts.length - 1;
    if (codec.dim !== manifest.dim || compression.codes.length !== snapshot.shards.length) throw new ColbertError('INTERNAL', 'The codes do not match the snapshot they were given with.');
    sections.push({ kind: 'codec', offset: 0, length: codecParts(centroids, groups, codec.dim, codec.nbits, 16).end, crc: 0xffffffff, nbits: codec.nbits, poolFactor, centroids, groups, trainedTokens, centroidBits: 16 });
    snapshot.shards.forEach((s, i) => {
      const rows = s.tokenIds.length;
      if (compression.codes[i]!.codes.length !== rows) throw new ColbertError('INTERNAL', 'The codes do not match the snapshot they were given with.');
      sections.push({ kind: 'codes', offset: 0, length: codesParts(rows, codec.dim, codec.nbits).end, crc: 0xffffffff, rows });
    });
  }
  const version = compression ? FORMAT_VERSION : FORMAT_VERSION_WITHOUT_CODES;
  const fileManifest: IndexManifest = { ...manifest, format: version };
  // The header holds the section offsets, which depend on its own length: lay out until stable.
  let headerBytes = new Uint8Array(0);
  let total = 0;
  for (;;) {
    let at = align(16 + headerBytes.length + 4, 8);
    for (const section of sections) {
      section.offset = at;
      at = align(at + section.length, 8);
    }
    total = at;
    const next = encoder.encode(JSON.stringify({ manifest: fileManifest, totalBytes: total, sections } satisfies FileHeader));
    if (next.length === headerBytes.length) break;
    headerBytes = next;
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(encoder.encode(PORTABLE_MAGIC), 0);
  view.setUint32(8, version, true);
  view.setUint32(12, headerBytes.length, true);
  out.set(docsBytes, sections[0]!.offset);
  sections[0]!.crc = crc32(docsBytes);
  snapshot.shards.forEach((s, i) => {
    const section = sections[i + 1]!;
    const parts = shardParts(s.docIds.length, s.tokenIds.length, manifest.dim, manifest.precision);
    const put = (array: Uint32Array | Int32Array | PackedVectors | Float32Array, at: number) => out.set(bytesOf(array), section.offset + at);
    put(s.offsets, parts.offsets);
    put(s.tokenIds, parts.tokenIds);
    put(s.vectors, parts.vectors);
    if (s.scales) put(s.scales, parts.scales);
    section.crc = crc32(out.subarray(section.offset, section.offset + section.length));
  });
  if (compression) {
    const { codec, tree } = compression.codec;
    const section = sections[snapshot.shards.length + 1]!;
    const parts = codecParts(section.centroids!, section.groups!, codec.dim, codec.nbits, 16);
    const put = (array: Float32Array | Uint32Array | Uint16Array | Uint8Array, s: SectionHeader, at: number) => out.set(bytesOf(array), s.offset + at);
    put(codec.centroids, section, parts.centroids);
    put(codec.cutoffs, section, parts.cutoffs);
    put(codec.weights, section, parts.weights);
    put(tree.coarse, section, parts.coarse);
    put(tree.starts, section, parts.starts);
    section.crc = crc32(out.subarray(section.offset, section.offset + section.length));
    compression.codes.forEach((c, i) => {
      const s = sections[snapshot.shards.length + 2 + i]!;
      const p = codesParts(c.codes.length, codec.dim, codec.nbits);
      put(c.codes, s, p.codes);
      put(c.residuals.subarray(0, p.end - p.residuals), s, p.residuals);
      s.crc = crc32(out.subarray(s.offset, s.offset + s.length));
    });
  }
  // The real checksums have at most as many digits as the placeholders: pad with JSON whitespace.
  const final = encoder.encode(JSON.stringify({ manifest: fileManifest, totalBytes: total, sections } satisfies FileHeader));
  if (final.length > headerBytes.length) throw new ColbertError('INTERNAL', 'The portable header grew after checksumming.');
  const padded = new Uint8Array(headerBytes.length).fill(0x20);
  padded.set(final);
  out.set(padded, 16);
  view.setUint32(16 + padded.length, crc32(padded), true);
  return out;
}

function corrupt(message: string, details?: Record<string, unknown>): ColbertError {
  return new ColbertError('INDEX_CORRUPT', `This index file is damaged or truncated: ${message}. Nothing was imported; export the index again.`, details);
}

const MAGIC_BYTES = new TextEncoder().encode(PORTABLE_MAGIC);

/**
 * Reads and fully verifies a portable file; throws INDEX_CORRUPT / INDEX_FORMAT_UNSUPPORTED.
 * Whatever the bytes, the error is coded: a file that fails a check nobody foresaw is still
 * INDEX_CORRUPT, never a bare TypeError or RangeError.
 */
export function readPortable(file: Uint8Array): IndexSnapshot {
  try {
    return readVerified(file);
  } catch (err) {
    if (isColbertError(err)) throw err;
    throw corrupt(`it could not be read (${err instanceof Error ? err.message : String(err)})`);
  }
}

function readVerified(file: Uint8Array): IndexSnapshot {
  checkLittleEndian();
  // Typed-array views need aligned offsets: work on an aligned copy when the input is not.
  const bytes = file.byteOffset % 8 === 0 ? file : file.slice();
  if (bytes.length < 20) throw corrupt(`it has ${bytes.length} bytes`);
  if (MAGIC_BYTES.some((b, i) => bytes[i] !== b)) throw corrupt('it does not start with the colbert-web index signature');
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  // The frame (signature, version, header length, header, header CRC) is the same in every format
  // version, so the version is trusted only once the frame is intact: damaged bytes behind a
  // valid signature are INDEX_CORRUPT, and only a whole header of a newer version is
  // INDEX_FORMAT_UNSUPPORTED.
  const headerLength = view.getUint32(12, true);
  if (16 + headerLength + 4 > bytes.length) throw corrupt('the header runs past the end of the file');
  const headerBytes = bytes.subarray(16, 16 + headerLength);
  if (crc32(headerBytes) !== view.getUint32(16 + headerLength, true)) throw corrupt('the header checksum does not match');
  if (version === 0) throw corrupt('its format version is 0');
  if (version > FORMAT_VERSION) {
    throw new ColbertError('INDEX_FORMAT_UNSUPPORTED', `This index file has format version ${version}; this colbert-web reads up to ${FORMAT_VERSION}. Upgrade colbert-web.`, { format: version, supported: FORMAT_VERSION });
  }
  let header: FileHeader;
  try {
    header = JSON.parse(decoder.decode(headerBytes)) as FileHeader;
  } catch {
    throw corrupt('the header is not valid JSON');
  }
  if (header.totalBytes !== bytes.length) throw corrupt(`it has ${bytes.length} bytes where its header says ${header.totalBytes}`, { expected: header.totalBytes, actual: bytes.length });
  const manifest = checkManifest(header.manifest, 'This index file');
  const { dim, precision } = manifest;
  if (!Array.isArray(header.sections) || header.sections[0]?.kind !== 'documents') throw corrupt('the section table is malformed');
  for (const s of header.sections) {
    if (!Number.isInteger(s.offset) || !Number.isInteger(s.length) || s.offset < 0 || s.offset % 4 !== 0 || s.offset + s.length > bytes.length) throw corrupt('a section lies outside the file');
    if (crc32(bytes.subarray(s.offset, s.offset + s.length)) !== s.crc) throw corrupt(`the checksum of a ${s.kind} section does not match`, { section: s.kind, offset: s.offset });
  }
  // Alignment padding is zero: then every byte of the file is checked by something.
  const covered = [{ from: 0, to: 16 + headerLength + 4 }, ...header.sections.map((s) => ({ from: s.offset, to: s.offset + s.length }))].sort((a, b) => a.from - b.from);
  for (let i = 0; i < covered.length; i++) {
    const end = i + 1 < covered.length ? covered[i + 1]!.from : bytes.length;
    if (end < covered[i]!.to) throw corrupt('sections overlap');
    for (let at = covered[i]!.to; at < end; at++) if (bytes[at] !== 0) throw corrupt('padding between sections is not zero');
  }
  const docsSection = header.sections[0];
  let documents: IndexSnapshot['documents'];
  try {
    documents = JSON.parse(decoder.decode(bytes.subarray(docsSection.offset, docsSection.offset + docsSection.length))) as IndexSnapshot['documents'];
  } catch {
    throw corrupt('the documents section is not valid JSON');
  }
  if (!Array.isArray(documents) || documents.some((d) => typeof d?.id !== 'string' || typeof d.hash !== 'string')) throw corrupt('the documents section is malformed');
  const shards: IndexSnapshot['shards'] = [];
  let next = 0;
  const shardSections = header.sections.slice(1).filter((s) => s.kind === 'shard');
  const codeSections = header.sections.slice(1 + shardSections.length);
  for (const s of header.sections.slice(1, 1 + shardSections.length)) {
    const docs = s.docs ?? -1;
    const rows = s.rows ?? -1;
    if (s.kind !== 'shard' || !Number.isInteger(docs) || !Number.isInteger(rows) || docs < 0 || rows < 0) throw corrupt('a shard section is malformed');
    const parts = shardParts(docs, rows, dim, precision);
    if (parts.end !== s.length || next + docs > documents.length) throw corrupt('a shard section has the wrong size');
    const base = bytes.byteOffset + s.offset;
    const offsets = new Uint32Array(bytes.buffer, base + parts.offsets, docs + 1);
    const tokenIds = new Int32Array(bytes.buffer, base + parts.tokenIds, rows);
    const n = rows * dim;
    const vectors: PackedVectors =
      precision === 'fp32' ? new Float32Array(bytes.buffer, base + parts.vectors, n) : precision === 'fp16' ? new Uint16Array(bytes.buffer, base + parts.vectors, n) : new Int8Array(bytes.buffer, base + parts.vectors, n);
    if (offsets[0] !== 0 || offsets[docs] !== rows) throw corrupt('shard offsets do not cover its rows');
    for (let i = 0; i < docs; i++) if (offsets[i + 1]! < offsets[i]!) throw corrupt('shard offsets go backwards');
    const docIds = documents.slice(next, next + docs).map((d) => d.id);
    next += docs;
    const shard: IndexSnapshot['shards'][number] = { precision, vectors, docIds, offsets, tokenIds, dim };
    if (precision === 'int8') shard.scales = new Float32Array(bytes.buffer, base + parts.scales, rows);
    shards.push(shard);
  }
  if (next !== documents.length) throw corrupt(`the shards hold ${next} documents but the file lists ${documents.length}`);
  if (new Set(documents.map((d) => d.id)).size !== documents.length) throw corrupt('a document id appears twice');
  const snapshot: IndexSnapshot = { manifest, documents, shards };
  if (codeSections.length) {
    if (version < 2) throw corrupt('a format 1 file holds sections after its shards');
    snapshot.compression = readCodes(bytes, codeSections, shards, dim);
  }
  return snapshot;
}

/** The codec and codes sections (verified by checksum already): their sizes, counts and code values. */
function readCodes(bytes: Uint8Array, sections: SectionHeader[], shards: IndexSnapshot['shards'], dim: number): SnapshotCodes {
  const [c, ...codes] = sections;
  const nbits = c?.nbits as ResidualBits;
  const { centroids = -1, groups = -1, poolFactor, trainedTokens, centroidBits = 32 } = c ?? {};
  if (c?.kind !== 'codec' || !RESIDUAL_BITS.includes(nbits) || !Number.isInteger(centroids) || centroids <= 0 || centroids > 65_536 || !Number.isInteger(groups) || groups <= 0 || !Number.isInteger(poolFactor) || !Number.isInteger(trainedTokens) || (centroidBits !== 16 && centroidBits !== 32)) {
    throw corrupt('the codec section is malformed');
  }
  const parts = codecParts(centroids, groups, dim, nbits, centroidBits);
  if (parts.end !== c.length) throw corrupt('the codec section has the wrong size');
  const base = bytes.byteOffset + c.offset;
  const f32 = (at: number, n: number) => new Float32Array(bytes.buffer, base + at, n).slice();
  const starts = new Uint32Array(bytes.buffer, base + parts.starts, groups + 1).slice();
  if (starts[0] !== 0 || starts[groups] !== centroids || starts.some((v, i) => i > 0 && v < starts[i - 1]!)) throw corrupt('the codec section is malformed');
  const codec: SnapshotCodes['codec'] = {
    codec: {
      dim,
      nbits,
      centroids: centroidBits === 16 ? new Uint16Array(bytes.buffer, base + parts.centroids, centroids * dim).slice() : halfCentroids(f32(parts.centroids, centroids * dim)),
      cutoffs: f32(parts.cutoffs, (1 << nbits) - 1), weights: f32(parts.weights, 1 << nbits),
    },
    tree: { coarse: f32(parts.coarse, groups * dim), starts },
    trainedTokens: trainedTokens!,
    poolFactor: poolFactor!,
  };
  if (codes.length !== shards.length) throw corrupt(`the file has codes for ${codes.length} of ${shards.length} shards`);
  const rb = residualBytes(dim, nbits);
  return {
    codec,
    codes: codes.map((s, i) => {
      const rows = shards[i]!.tokenIds.length;
      const p = codesParts(rows, dim, nbits);
      if (s.kind !== 'codes' || s.rows !== rows || p.end !== s.length) throw corrupt('a codes section does not match its shard');
      const at = bytes.byteOffset + s.offset;
      const values = new Uint16Array(bytes.buffer, at + p.codes, rows);
      for (const v of values) if (v >= centroids) throw corrupt('a codes section names a centroid the codec lacks');
      return { codes: values, residuals: new Uint8Array(bytes.buffer, at + p.residuals, rows * rb) };
    }),
  };
}
