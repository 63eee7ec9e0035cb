/**
 * A dependency-free static file server for browser tests (node:http only).
 *
 * - Listens on 127.0.0.1 (a secure context, so WebGPU, Cache Storage and crypto.subtle work).
 * - Sends the cross-origin isolation headers: without COOP/COEP onnxruntime-web silently runs on
 *   one thread (see ../shared/docs/browser-testing.md).
 * - Sends `Cache-Control: no-store`, so the browser's HTTP cache never answers in place of the
 *   server: a test that asserts "the second load made no request" then proves the library's own
 *   cache (Cache Storage), not the HTTP cache.
 * - Mounts: a plain mount serves `prefix + path` from `dir + path`. A mount whose prefix is
 *   `/hub/` behaves like the Hugging Face Hub: `GET /hub/<owner>/<name>/resolve/<revision>/<path>`
 *   serves `dir/<owner>/<name>/<path>` for any revision.
 * - `setOffline(true)` makes every request under a mount answer 503, to prove offline behaviour.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, isAbsolute, join, relative, resolve, sep } from 'node:path';

/** Options for {@link startServer}. */
export interface ServerOptions {
  /** Folder served at `/` (everything not under a mount). */
  root: string;
  /**
   * URL prefix (starting and ending with `/`) → folder. The prefix `/hub/` gets Hugging Face
   * Hub routing (`/hub/<owner>/<name>/resolve/<revision>/<path>`). Longest prefix wins.
   */
  mounts?: Record<string, string>;
  /**
   * URL prefix (starting and ending with `/`) → folder, served like `root`: not a mount, so
   * `setOffline` leaves it alone (e.g. `/dist/` → the library bundle the browser specs import).
   */
  aliases?: Record<string, string>;
  /** Send the COOP/COEP headers that make pages cross-origin isolated. Default true. */
  isolation?: boolean;
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
}

/** One request as the server saw it. */
export interface RequestRecord {
  method: string;
  /** Decoded URL path, query string removed. */
  path: string;
  status: number;
  /** For Hub mounts: `owner/name`, the revision asked for, and the file path in the repo. */
  hub?: { repo: string; revision: string; file: string };
}

/** A running server. */
export interface TestServer {
  /** Base URL without a trailing slash, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
  /**
   * Decoded paths of every request, in order (all methods). Hub paths keep their
   * `/resolve/<revision>/` segment, so the revision asked for is recorded too.
   */
  requests: string[];
  /** The same requests with method, status and parsed Hub fields. */
  log: RequestRecord[];
  /** While on, every request under a mount answers 503 (files under `root` are still served). */
  setOffline(on: boolean): void;
}

/** The prefix that gets Hugging Face Hub routing. */
export const HUB_PREFIX = '/hub/';

const MIME: Readonly<Record<string, string>> = Object.freeze({
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.wgsl': 'text/plain; charset=utf-8',
  '.onnx': 'application/octet-stream',
  '.onnx_data': 'application/octet-stream',
  '.data': 'application/octet-stream',
  '.safetensors': 'application/octet-stream',
  '.bin': 'application/octet-stream',
});

/** MIME type sent for a file name; unknown extensions get `application/octet-stream`. */
export function mimeType(file: string): string {
  return MIME[extname(file).toLowerCase()] ?? 'application/octet-stream';
}

const ISOLATED_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'cross-origin',
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Expose-Headers': 'Content-Length, Content-Type',
  'Cache-Control': 'no-store',
});

type Route =
  | { kind: 'file'; file: string; mounted: boolean; hub?: RequestRecord['hub'] }
  | { kind: 'error'; status: number; mounted: boolean; hub?: RequestRecord['hub'] };

/** Splits a raw URL path into decoded segments; null when it cannot be decoded or is unsafe. */
function decodeSegments(rawPath: string): string[] | null {
  const segments: string[] = [];
  for (const raw of rawPath.split('/')) {
    let s: string;
    try {
      s = decodeURIComponent(raw);
    } catch {
      return null;
    }
    // Encoded separators, NUL and dot segments could escape the served folder.
    if (s.includes('/') || s.includes('\\') || s.includes('\0') || s === '..' || s === '.') return null;
    segments.push(s);
  }
  return segments;
}

/** `dir` joined with `segments`, or null when the result is outside `dir`. */
function inside(dir: string, segments: string[]): string | null {
  const base = resolve(dir);
  const file = resolve(join(base, ...segments));
  const rel = relative(base, file);
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return null;
  return file;
}

/**
 * Starts the server. Resolves once it listens.
 *
 * @example
 * const server = await startServer({ root: REPO_ROOT, mounts: { '/hub/': '.cache/test-models/hub' } });
 * await page.goto(`${server.url}/test/browser/harness.html`);
 * await server.close();
 */
export async function startServer(opts: ServerOptions): Promise<TestServer> {
  const root = resolve(opts.root);
  const mounts = Object.entries(opts.mounts ?? {})
    .map(([prefix, dir]) => {
      if (!prefix.startsWith('/') || !prefix.endsWith('/')) {
        throw new Error(`startServer: mount prefix "${prefix}" must start and end with "/" (e.g. "/models/").`);
      }
      return { prefix, dir: resolve(dir) };
    })
    .sort((a, b) => b.prefix.length - a.prefix.length);

  const BASE_HEADERS: Readonly<Record<string, string>> =
    opts.isolation === false ? Object.fromEntries(Object.entries(ISOLATED_HEADERS).filter(([k]) => !k.startsWith('Cross-Origin-Opener') && !k.startsWith('Cross-Origin-Embedder'))) : ISOLATED_HEADERS;
  const aliases = Object.entries(opts.aliases ?? {}).map(([prefix, dir]) => ({ prefix, dir: resolve(dir) }));
  const requests: string[] = [];
  const log: RequestRecord[] = [];
  let offline = false;

  const route = (rawPath: string): Route => {
    const alias = aliases.find((a) => rawPath.startsWith(a.prefix));
    if (alias) {
      const segments = decodeSegments(rawPath.slice(alias.prefix.length));
      const file = segments && inside(alias.dir, segments);
      return file ? { kind: 'file', file, mounted: false } : { kind: 'error', status: 403, mounted: false };
    }
    const mount = mounts.find((m) => rawPath.startsWith(m.prefix));
    if (!mount) {
      const segments = decodeSegments(rawPath.slice(1));
      const file = segments && inside(root, segments);
      return file ? { kind: 'file', file, mounted: false } : { kind: 'error', status: 403, mounted: false };
    }
    const rest = rawPath.slice(mount.prefix.length);
    if (mount.prefix !== HUB_PREFIX) {
      const segments = decodeSegments(rest);
      const file = segments && inside(mount.dir, segments);
      return file ? { kind: 'file', file, mounted: true } : { kind: 'error', status: 403, mounted: true };
    }
    // <owner>/<name>/resolve/<revision>/<path...>. The revision may hold an encoded "/"
    // (`refs%2Fpr%2F1`); it only names what was asked for and never reaches the file system.
    const [rawOwner = '', rawName = '', rawResolve = '', rawRevision = '', ...rawFile] = rest.split('/');
    const segments = decodeSegments([rawOwner, rawName, rawResolve, ...rawFile].join('/'));
    let revision: string | null;
    try {
      revision = decodeURIComponent(rawRevision);
    } catch {
      revision = null;
    }
    if (!segments || revision === null) return { kind: 'error', status: 403, mounted: true };
    const [owner, name, resolveWord, ...filePath] = segments;
    if (!owner || !name || resolveWord !== 'resolve' || revision === '' || filePath.length === 0 || filePath.includes('')) {
      return { kind: 'error', status: 404, mounted: true };
    }
    const hub = { repo: `${owner}/${name}`, revision, file: filePath.join('/') };
    const file = inside(mount.dir, [owner, name, ...filePath]);
    return file ? { kind: 'file', file, mounted: true, hub } : { kind: 'error', status: 403, mounted: true, hub };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    let decodedPath: string;
    try {
      decodedPath = decodeURIComponent(url.pathname);
    } catch {
      decodedPath = url.pathname;
    }
    const record: RequestRecord = { method, path: decodedPath, status: 0 };
    requests.push(decodedPath);
    log.push(record);

    const send = (status: number, body: string, headers: Record<string, string> = {}): void => {
      record.status = status;
      const buf = Buffer.from(body, 'utf8');
      res.writeHead(status, { ...BASE_HEADERS, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(buf.length), ...headers });
      res.end(method === 'HEAD' ? undefined : buf);
    };

    if (method === 'OPTIONS') {
      record.status = 204;
      res.writeHead(204, { ...BASE_HEADERS, 'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS', 'Access-Control-Allow-Headers': '*' });
      res.end();
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      send(405, `Method ${method} not allowed\n`, { Allow: 'GET, HEAD, OPTIONS' });
      return;
    }

    const r = route(url.pathname);
    if (r.hub) record.hub = r.hub;
    if (r.mounted && offline) {
      send(503, 'Offline (test server)\n');
      return;
    }
    if (r.kind === 'error') {
      send(r.status, r.status === 403 ? 'Forbidden path\n' : 'Not found\n');
      return;
    }

    let file = r.file;
    let info = await stat(file).catch(() => null);
    if (info?.isDirectory()) {
      file = join(file, 'index.html');
      info = await stat(file).catch(() => null);
    }
    if (!info?.isFile()) {
      send(404, `Not found: ${decodedPath}\n`);
      return;
    }
    record.status = 200;
    res.writeHead(200, { ...BASE_HEADERS, 'Content-Type': mimeType(file), 'Content-Length': String(info.size) });
    if (method === 'HEAD') {
      res.end();
      return;
    }
    const stream = createReadStream(file);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { ...BASE_HEADERS, 'Content-Type': 'text/plain; charset=utf-8' });
        res.end(`Internal error: ${String(err)}\n`);
      } else {
        res.destroy();
      }
    });
  });

  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', fail);
      ok();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    log,
    setOffline(on: boolean) {
      offline = on;
    },
    close: () =>
      new Promise<void>((ok, fail) => {
        server.close((err) => (err ? fail(err) : ok()));
        server.closeAllConnections();
      }),
  };
}
