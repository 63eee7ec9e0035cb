import { launchChromium } from '../test/support/browser.ts';
import { startServer } from '../test/support/server.ts';
async function main(){
const SCRIPT = `async ({ sizes, totalBytes, n }) => {
  const out = [];
  for (const size of sizes) {
    const name = 'm' + size;
    await new Promise((r) => { const q = indexedDB.deleteDatabase(name); q.onsuccess = r; q.onerror = r; });
    const db = await new Promise((res, rej) => { const q = indexedDB.open(name, 1); q.onupgradeneeded = () => q.result.createObjectStore('s'); q.onsuccess = () => res(q.result); q.onerror = () => rej(q.error); });
    const count = Math.max(n * 4, Math.floor(totalBytes / size));
    let t = performance.now();
    for (let i = 0; i < count; i += 256) {
      const tx = db.transaction('s', 'readwrite');
      for (let j = i; j < Math.min(count, i + 256); j++) { const b = new Uint8Array(size); b[0] = j & 255; b[size-1] = 7; tx.objectStore('s').put({ v: b.buffer }, j); }
      await new Promise((r, e) => { tx.oncomplete = r; tx.onerror = e; });
    }
    const writeMs = performance.now() - t;
    const times = [];
    for (let rep = 0; rep < 9; rep++) {
      const keys = Array.from({ length: n }, () => Math.floor(Math.random() * count));
      t = performance.now();
      const tx = db.transaction('s', 'readonly');
      const st = tx.objectStore('s');
      let bytes = 0;
      await Promise.all(keys.map((k) => new Promise((r) => { const q = st.get(k); q.onsuccess = () => { bytes += q.result.v.byteLength; r(); }; })));
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    out.push({ size, count, n, writeMs: Math.round(writeMs), medianReadMs: +times[4].toFixed(1), minMs: +times[0].toFixed(1) });
    db.close();
    await new Promise((r) => { const q = indexedDB.deleteDatabase(name); q.onsuccess = r; q.onerror = r; });
  }
  return out;
}`;
const server = await startServer({ root: '/work/wt-memory' } as never).catch(() => undefined);
const browser = await launchChromium();
const page = await browser.newPage();
const url = (server as { url?: string } | undefined)?.url;
await page.goto(url ? url + '/test/browser/harness.html' : 'about:blank');
for (const n of [64, 128, 256]) {
  const r = await page.evaluate(`(${SCRIPT})(${JSON.stringify({ sizes: [16384, 40960, 65536, 262144, 2097152], totalBytes: 256 << 20, n })})`);
  console.log(JSON.stringify(r));
}
await browser.close();
(server as { close?: () => Promise<void> } | undefined)?.close?.();
} main();
