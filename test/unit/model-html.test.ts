/**
 * A static host that answers every unknown path with its HTML page (HTTP 200) is not serving a
 * model: the loader says the file was not found (MODEL_NOT_FOUND, with its URL), not that the
 * JSON is invalid.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetchModelJSON, resolveModelSource } from '../../src/model/files.ts';

let server: Server;
let base = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    const plain = req.url?.startsWith('/plain/');
    res.writeHead(200, { 'content-type': plain ? 'application/octet-stream' : 'text/html; charset=utf-8' });
    res.end('<!doctype html><html><body><div id="app"></div></body></html>');
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((done) => server.close(() => done())));

describe('model files on a server that answers unknown paths with HTML', () => {
  it('is MODEL_NOT_FOUND naming the file and its URL (text/html content type)', async () => {
    const source = resolveModelSource(`${base}/models/missing/`);
    await expect(fetchModelJSON(source, 'config_sentence_transformers.json', { cache: false })).rejects.toMatchObject({
      code: 'MODEL_NOT_FOUND',
      message: `config_sentence_transformers.json at ${base}/models/missing/config_sentence_transformers.json was not found: the server answered with an HTML page where JSON was expected.`,
    });
  });

  it('is MODEL_NOT_FOUND when the HTML comes without an HTML content type', async () => {
    const source = resolveModelSource(`${base}/plain/missing/`);
    await expect(fetchModelJSON(source, 'config.json', { cache: false })).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND', message: expect.stringContaining('an HTML page where JSON was expected') });
  });
});
