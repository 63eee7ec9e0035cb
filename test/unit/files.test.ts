/** Model locations: Hub repo ids with revisions, URLs, paths, and bad names. */
import { describe, expect, it } from 'vitest';
import { fileLocation, resolveModelSource } from '../../src/model/files.ts';

describe('resolveModelSource', () => {
  it('turns a Hub repo id into resolve URLs, with the revision encoded', () => {
    const src = resolveModelSource('lightonai/ColBERT-Zero-supervised', { revision: 'refs/pr/1' });
    expect(src).toMatchObject({ kind: 'hub', revision: 'refs/pr/1' });
    expect(fileLocation(src, 'onnx/model.onnx')).toBe('https://huggingface.co/lightonai/ColBERT-Zero-supervised/resolve/refs%2Fpr%2F1/onnx/model.onnx');
    expect(resolveModelSource('a/b', { hubUrl: 'http://127.0.0.1:9/hub/' }).base).toBe('http://127.0.0.1:9/hub/a/b/resolve/main/');
  });

  it('keeps URLs as base URLs and folders as paths (in Node)', () => {
    expect(resolveModelSource('https://example.org/models/x')).toMatchObject({ kind: 'url', base: 'https://example.org/models/x/' });
    expect(resolveModelSource('./models/x')).toMatchObject({ kind: 'path', base: './models/x/' });
    expect(resolveModelSource('/srv/models/x/')).toMatchObject({ kind: 'path', base: '/srv/models/x/' });
  });

  it('rejects names that are none of these with INVALID_ARGUMENT', () => {
    for (const bad of ['', '   ', 'just-a-name', 'a/b/c d']) {
      expect(() => resolveModelSource(bad)).toThrowError(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
  });
});
