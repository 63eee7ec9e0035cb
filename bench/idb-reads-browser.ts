/**
 * How IndexedDB reads scale with record size in headless Debian Chromium: N random gets (64, 128,
 * 256) of records of S bytes (16 KiB .. 2 MiB, 256 MiB stored) in one readonly transaction,
 * median of 9; what chose the row chunk size of src/store/shards.ts (CHUNK_BYTES).
 *
 *   npx tsx bench/idb-reads-browser.ts
 */
import { launchChromium } from '../test/support/browser.ts';
import { startServer } from '../test/support/server.ts';
import { REPO_ROOT } from '../test/support/shared.ts';

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
const server = await startServer({ root: REPO_ROOT });
const browser = await launchChromium();
const page = await browser.newPage();
await page.goto(`${server.url}/test/browser/harness.html`);
for (const n of [64, 128, 256]) {
  const r = await page.evaluate(`(${SCRIPT})(${JSON.stringify({ sizes: [16384, 40960, 65536, 262144, 2097152], totalBytes: 256 << 20, n })})`);
  console.log(JSON.stringify(r));
}
await browser.close();
await server.close();
