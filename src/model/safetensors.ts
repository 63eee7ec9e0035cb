/**
 * The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
 * (`{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: {...} }`), then the data.
 * Reading never copies tensor bytes; writing pads the header to a multiple of 8.
 */
import { ColbertError } from '../errors.ts';

/** Element types this library reads and writes. */
export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** One tensor: its raw little-endian bytes (a view into the file). */
export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Uint8Array;
}

const BYTES: Record<SafetensorsDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
/** Headers above this are refused (the format's own reference limit is 100 MB). */
const MAX_HEADER = 100_000_000;

function invalid(message: string, details?: Record<string, unknown>): ColbertError {
  return new ColbertError('MODEL_CONFIG_INVALID', `Invalid safetensors file: ${message}`, details);
}

/** Parses a safetensors file. Throws MODEL_CONFIG_INVALID for malformed input. */
export function parseSafetensors(input: ArrayBuffer | Uint8Array): Map<string, SafetensorsTensor> {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  if (bytes.byteLength < 8) throw invalid(`${bytes.byteLength} bytes is too short for a header.`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > MAX_HEADER || 8 + headerLength > bytes.byteLength) {
    throw invalid(`the header claims ${headerLength} bytes but the file has ${bytes.byteLength}.`, { headerLength });
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch (err) {
    throw invalid(`the header is not JSON (${(err as Error).message}).`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw invalid('the header is not a JSON object.');
  const dataStart = 8 + headerLength;
  const dataLength = bytes.byteLength - dataStart;
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, data_offsets: offsets } = (entry ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== 'string' || !(dtype in BYTES)) throw invalid(`tensor "${name}" has an unsupported dtype ${JSON.stringify(dtype)}.`, { name });
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw invalid(`tensor "${name}" has an invalid shape.`, { name });
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
      throw invalid(`tensor "${name}" has invalid data_offsets.`, { name });
    }
    const [begin, end] = offsets as [number, number];
    const expected = (shape as number[]).reduce((a, b) => a * b, 1) * BYTES[dtype as SafetensorsDtype];
    if (begin > end || end > dataLength || end - begin !== expected) {
      throw invalid(`tensor "${name}" spans bytes ${begin}..${end} of ${dataLength}, expected ${expected} bytes.`, { name, begin, end, dataLength });
    }
    tensors.set(name, { dtype: dtype as SafetensorsDtype, shape: shape as number[], data: bytes.subarray(dataStart + begin, dataStart + end) });
  }
  return tensors;
}

function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** A float tensor's values as a Float32Array (F32 viewed in place when aligned, else copied; F16/BF16/F64 converted). */
export function tensorToFloat32(tensor: SafetensorsTensor): Float32Array {
  const { dtype, data } = tensor;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (dtype === 'F32') {
    if (data.byteOffset % 4 === 0) return new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4);
    return new Float32Array(data.slice().buffer);
  }
  const n = data.byteLength / BYTES[dtype];
  const out = new Float32Array(n);
  if (dtype === 'F16') for (let i = 0; i < n; i++) out[i] = f16ToF32(view.getUint16(i * 2, true));
  else if (dtype === 'BF16') for (let i = 0; i < n; i++) out[i] = new Float32Array(new Uint32Array([view.getUint16(i * 2, true) << 16]).buffer)[0]!;
  else if (dtype === 'F64') for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, true);
  else throw new ColbertError('MODEL_CONFIG_INVALID', `Tensor of dtype ${dtype} is not a float tensor.`, { dtype });
  return out;
}

/** Writes tensors (in the given order) and optional string metadata into one safetensors file. */
export function writeSafetensors(tensors: Record<string, SafetensorsTensor>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header['__metadata__'] = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((new TextEncoder().encode(json).byteLength) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.byteLength;
  for (const t of Object.values(tensors)) {
    out.set(t.data, at);
    at += t.data.byteLength;
  }
  return out;
}
