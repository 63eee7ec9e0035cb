/**
 * Proves the browser test infrastructure itself, without the library: the page is cross-origin
 * isolated (multithreaded WASM), WebGPU gives an adapter and runs a compute shader correctly,
 * and IndexedDB keeps data across a real reload.
 *
 * WebGPU policy (../shared/docs/browser-testing.md): in CI a missing adapter FAILS, so a silent
 * CPU fallback can never pass as "WebGPU tested"; elsewhere it skips with a clear message.
 */
import { expect, test, type Page } from '@playwright/test';
import { harnessUrl } from '../support/browser.ts';

const IN_CI = !!process.env['CI'];
const NO_ADAPTER = 'navigator.gpu.requestAdapter() returned no adapter';

/** Adapter details as the page sees them, or null when WebGPU has no adapter. */
async function adapterInfo(page: Page) {
  return page.evaluate(async () => {
    if (!('gpu' in navigator)) return null;
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return null;
    const { vendor, architecture, device, description, isFallbackAdapter } = adapter.info;
    return {
      vendor,
      architecture,
      device,
      description,
      isFallbackAdapter,
      features: [...adapter.features].sort(),
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
    };
  });
}

/** Fails in CI, skips elsewhere, when the page has no WebGPU adapter (`info` null). */
function requireAdapter(info: unknown): void {
  if (info !== null) return;
  test.skip(!IN_CI, `${NO_ADAPTER}: no WebGPU on this machine; skipping outside CI`);
  expect(info, `${NO_ADAPTER}; in CI this is a failure (check the Chromium flags and SwiftShader in /usr/lib/chromium)`).not.toBeNull();
}

test.beforeEach(async ({ page }) => {
  await page.goto(harnessUrl());
});

test('the harness page is cross-origin isolated, so WASM can use threads', async ({ page }) => {
  const state = await page.evaluate(() => ({
    crossOriginIsolated: globalThis.crossOriginIsolated,
    sharedArrayBuffer: typeof SharedArrayBuffer === 'function',
    secureContext: globalThis.isSecureContext,
  }));
  expect(state).toEqual({ crossOriginIsolated: true, sharedArrayBuffer: true, secureContext: true });
});

test('WebGPU gives an adapter', async ({ page }) => {
  const info = await adapterInfo(page);
  requireAdapter(info);
  test.info().annotations.push({ type: 'adapter', description: JSON.stringify(info) });
  console.log(`[smoke] WebGPU adapter: ${JSON.stringify(info)}`);
  // Limits the library relies on being able to ask for (browser-testing.md lists SwiftShader's).
  expect(info?.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
  expect(info?.maxComputeWorkgroupStorageSize).toBeGreaterThanOrEqual(16384);
});

test('a WGSL compute shader doubles four floats, with no validation error', async ({ page }) => {
  requireAdapter(await adapterInfo(page));
  const result = await page.evaluate(async () => {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) throw new Error('no adapter');
    const device = await adapter.requestDevice({ label: 'smoke device' });
    const input = new Float32Array([1.5, -2, 3.25, 1e6]);
    device.pushErrorScope('validation');
    const module = device.createShaderModule({
      label: 'smoke double',
      code: /* wgsl */ `
        @group(0) @binding(0) var<storage, read_write> data: array<f32>;
        @compute @workgroup_size(4)
        fn main(@builtin(global_invocation_id) id: vec3<u32>) {
          if (id.x < arrayLength(&data)) { data[id.x] = data[id.x] * 2.0; }
        }`,
    });
    const pipeline = device.createComputePipeline({ label: 'smoke double', layout: 'auto', compute: { module, entryPoint: 'main' } });
    const storage = device.createBuffer({
      label: 'smoke data',
      size: input.byteLength,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    const readback = device.createBuffer({ label: 'smoke readback', size: input.byteLength, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(storage, 0, input);
    const bindGroup = device.createBindGroup({ label: 'smoke data', layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: storage } }] });
    const encoder = device.createCommandEncoder({ label: 'smoke' });
    const pass = encoder.beginComputePass({ label: 'smoke' });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(1);
    pass.end();
    encoder.copyBufferToBuffer(storage, 0, readback, 0, input.byteLength);
    device.queue.submit([encoder.finish()]);
    await readback.mapAsync(GPUMapMode.READ);
    const output = [...new Float32Array(readback.getMappedRange().slice(0))];
    readback.unmap();
    const error = await device.popErrorScope();

    // The scope must be able to catch something, or "no error" above proves nothing.
    device.pushErrorScope('validation');
    device.createShaderModule({ label: 'smoke invalid', code: 'this is not wgsl' });
    const expectedError = await device.popErrorScope();

    storage.destroy();
    readback.destroy();
    device.destroy();
    return { output, error: error?.message ?? null, invalidShaderCaught: expectedError !== null };
  });
  expect(result.error).toBeNull();
  expect(result.output).toEqual([3, -4, 6.5, 2e6]);
  expect(result.invalidShaderCaught).toBe(true);
});

/**
 * One IndexedDB step in the page: 'write' stores two floats, 'read' returns them and deletes the
 * database. One function for both, because page.evaluate cannot take helper functions along.
 */
function kvStep(page: Page, name: string, step: 'write' | 'read'): Promise<number[] | null> {
  return page.evaluate(
    async ({ name, step }) => {
      const db = await new Promise<IDBDatabase>((ok, fail) => {
        const req = indexedDB.open(name, 1);
        req.onupgradeneeded = () => req.result.createObjectStore('kv');
        req.onsuccess = () => ok(req.result);
        req.onerror = () => fail(req.error);
      });
      try {
        if (step === 'write') {
          await new Promise<void>((ok, fail) => {
            const tx = db.transaction('kv', 'readwrite');
            tx.objectStore('kv').put(new Float32Array([0.25, 0.5]).buffer, 'vectors');
            tx.oncomplete = () => ok();
            tx.onerror = () => fail(tx.error);
          });
          return null;
        }
        const value = await new Promise<unknown>((ok, fail) => {
          const req = db.transaction('kv').objectStore('kv').get('vectors');
          req.onsuccess = () => ok(req.result);
          req.onerror = () => fail(req.error);
        });
        return value instanceof ArrayBuffer ? [...new Float32Array(value)] : null;
      } finally {
        db.close();
        if (step === 'read') {
          await new Promise<void>((ok, fail) => {
            const req = indexedDB.deleteDatabase(name);
            req.onsuccess = () => ok();
            req.onerror = () => fail(req.error);
          });
        }
      }
    },
    { name, step },
  );
}

test('IndexedDB stores an ArrayBuffer that survives a page reload', async ({ page }) => {
  const name = `smoke-${Date.now()}`;
  await kvStep(page, name, 'write');
  await page.reload();
  expect(await kvStep(page, name, 'read')).toEqual([0.25, 0.5]);
});
