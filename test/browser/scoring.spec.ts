/**
 * MaxSim on WebGPU (SwiftShader here) against the CPU oracle, in Debian Chromium:
 * - the scorers directly (a test bundle of src/score and the memory store, built below): every
 *   stored precision, zero-token, single-token and deleted documents, appends that upload only new
 *   rows, an index split across many small buffers, a query longer than one shader pass, all inside
 *   a validation error scope; top-k from a small candidate read-back (block maxima, then the slots
 *   at or above the k-th of them) equal to the full read-back with ties, deletions, an overflowing
 *   candidate buffer and a mostly deleted shard; and a device lost mid-session, after which
 *   queries still answer;
 * - the public API in its worker: `scoring: 'webgpu'` vs `'cpu'` on the Cranfield collection for
 *   every precision, and what `'auto'` picks on a software adapter.
 * In CI a missing WebGPU adapter fails these tests; elsewhere they skip with the reason.
 */
import { expect, test, type Page } from '@playwright/test';
import { harnessUrl, libraryBuildMissing, testHubUrl, testModelsMissing, TEST_HUB_REPO } from '../support/browser.ts';
import { buildScoringBundle } from '../support/scoring-bundle.ts';
import { CRANFIELD_DIR, HAVE_SHARED, SHARED_MISSING } from '../support/shared.ts';

const IN_CI = !!process.env['CI'];
let BUNDLE_URL = '';

test.beforeAll(async () => {
  test.setTimeout(120_000);
  BUNDLE_URL = await buildScoringBundle('.cache/scoring-test');
});

test.beforeEach(async ({ page }) => {
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  page.on('console', (msg) => (msg.type() === 'error' || msg.text().startsWith('[scoring page]')) && console.log(`[page console] ${msg.text()}`));
  await page.goto(harnessUrl());
  const adapter = await page.evaluate(async () => {
    const a = await navigator.gpu?.requestAdapter();
    return a ? { ok: true, fallback: Boolean((a.info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter), arch: a.info.architecture } : { ok: false };
  });
  if (!adapter.ok) {
    expect(IN_CI, 'no WebGPU adapter in CI: the GPU scoring tests must run there').toBe(false);
    test.skip(true, 'no WebGPU adapter in this browser');
  }
});

/** Compares two full rankings: same ids in the same order, scores within 1e-4. */
function expectSameRanking(gpu: { id: string; score: number }[], cpu: { id: string; score: number }[], what: string): void {
  expect(gpu.length, `${what}: hit count`).toBe(cpu.length);
  expect(gpu.map((h) => h.id), `${what}: ranking`).toEqual(cpu.map((h) => h.id));
  let worst = 0;
  gpu.forEach((h, i) => (worst = Math.max(worst, Math.abs(h.score - cpu[i]!.score))));
  expect(worst, `${what}: largest score difference`).toBeLessThan(1e-4);
}

interface Ranked {
  id: string;
  score: number;
}

async function directRun(page: Page, precision: string): Promise<{
  rounds: { gpu: Ranked[]; cpu: Ranked[]; live: number }[];
  residency: { pages: number; rowBytes: number; uploadedBytes: number }[];
  appendedBytes: number;
  device: string;
  fallbackReason: string | null;
  validationError: string | null;
  zeroScores: number[];
}> {
  return page.evaluate(
    async ({ url, precision }) => {
      const lib = await import(/* @vite-ignore */ url);
      const dim = 128;
      const next = lib.mulberry32(precision.length * 101);
      const device: GPUDevice = await lib.requestScoringDevice();
      device.pushErrorScope('validation');
      // 48 KiB pages: a few dozen documents each, so the index spans many buffers.
      const scorer = await lib.createScorer({ scoring: 'webgpu', gpu: { device, maxPageBytes: 48 * 1024 } });
      const cpu = new lib.CpuScorer(undefined);
      const store = new lib.MemoryStore({ precision });
      const doc = (i: number) => ({ id: `doc-${String(i).padStart(4, '0')}`, matrix: lib.randomMatrix(i % 17 === 0 ? 0 : i % 13 === 1 ? 1 : 2 + Math.floor(next() * 60), dim, next) });
      await store.put(Array.from({ length: 300 }, (_, i) => doc(i)));
      await store.delete(['doc-0005', 'doc-0044', 'doc-0102', 'doc-0250']);
      const rounds: { gpu: Ranked[]; cpu: Ranked[]; live: number }[] = [];
      const residency: { pages: number; rowBytes: number; uploadedBytes: number }[] = [];
      const rank = async () => {
        const live = (await store.stats()).documents;
        for (const tokens of [32, 40]) {
          const q = lib.randomMatrix(tokens, dim, next);
          const gpu = await scorer.rank(q, () => store.shards(), live);
          const cpuHits = await cpu.rank(q, () => store.shards(), live);
          rounds.push({ gpu, cpu: cpuHits, live });
        }
        residency.push(scorer.residency());
      };
      await rank();
      await rank(); // nothing changed: nothing is uploaded again
      const added = Array.from({ length: 60 }, (_, i) => doc(300 + i));
      await store.put(added);
      await store.delete(['doc-0301', 'doc-0007']);
      const bytesPer = precision === 'fp32' ? dim * 4 : precision === 'fp16' ? dim * 2 : dim + 4;
      const appendedBytes = added.reduce((n, d) => n + d.matrix.tokens * bytesPer, 0);
      await rank();
      const zeroScores = rounds[0]!.gpu.filter((h: Ranked) => Number(h.id.slice(4)) % 17 === 0).map((h: Ranked) => h.score);
      const error = await device.popErrorScope();
      const out = { rounds, residency, appendedBytes, device: scorer.device, fallbackReason: scorer.fallbackReason ?? null, validationError: error ? error.message : null, zeroScores };
      scorer.dispose();
      device.destroy();
      return out;
    },
    { url: BUNDLE_URL, precision },
  );
}

for (const precision of ['fp32', 'fp16', 'int8']) {
  test(`${precision}: GPU and CPU agree on random data with empty, single-token and deleted documents, appends and a split index`, async ({ page }) => {
    test.setTimeout(180_000);
    const run = await directRun(page, precision);
    expect(run.validationError).toBeNull();
    expect(run.device, run.fallbackReason ?? '').toBe('webgpu');
    expect(run.fallbackReason).toBeNull();
    run.rounds.forEach((r, i) => expectSameRanking(r.gpu, r.cpu, `${precision} round ${i}`));
    expect(run.rounds[0]!.live).toBe(296);
    expect(run.rounds.at(-1)!.live).toBe(354);
    // Zero-token documents score exactly 0 on the GPU.
    expect(run.zeroScores.length).toBeGreaterThan(10);
    expect(new Set(run.zeroScores)).toEqual(new Set([0]));
    const [first, again, appended] = run.residency;
    expect(first!.pages).toBeGreaterThan(5);
    // A second query uploads nothing; an append uploads the new rows (plus 4-byte alignment slack) only.
    expect(again!.uploadedBytes).toBe(first!.uploadedBytes);
    expect(appended!.uploadedBytes - again!.uploadedBytes).toBeGreaterThanOrEqual(run.appendedBytes);
    expect(appended!.uploadedBytes - again!.uploadedBytes).toBeLessThan(run.appendedBytes + 64 * appended!.pages);
    expect(appended!.rowBytes - first!.rowBytes).toBe(run.appendedBytes);
  });
}

interface TopkRound {
  k: number;
  candidate: Ranked[];
  full: Ranked[];
  cpu: Ranked[];
  /** Bytes and buffer maps the candidate scorer read back for this query, and whether it used the candidate path. */
  readBack: number;
  readBacks: number;
  candidateRead: boolean;
  /** Candidates the list held, and the range the oracle allows: live slots scoring >= T (+-1e-4), T the k-th largest block maximum. */
  candidates: number;
  expectedCandidates: [number, number];
  overflow: Ranked[];
  overflowFullRead: boolean;
  /** Whether the k-th and (k+1)-th best scores tie (copies cut by id at the k-th place). */
  tie: boolean;
}

interface TopkCase {
  slots: number;
  candidate: Ranked[];
  full: Ranked[];
  cpu: Ranked[];
  candidateRead: boolean;
  readBacks: number;
}

async function topkRun(page: Page, precision: string): Promise<{ rounds: TopkRound[]; slots: number; shards: number; pages: number; live: number; sparse: TopkCase; tied: TopkCase[]; validationError: string | null; devices: string[] }> {
  return page.evaluate(
    async ({ url, precision }) => {
      const lib = await import(/* @vite-ignore */ url);
      const dim = 128;
      const next = lib.mulberry32(precision.length * 31 + 7);
      const device: GPUDevice = await lib.requestScoringDevice();
      device.pushErrorScope('validation');
      // Candidate path on every shard (no small-shard threshold, 8-slot blocks); a full-read-back
      // scorer on the same device as the reference; one whose candidate buffer always overflows.
      const candidate = await lib.createScorer({ scoring: 'webgpu', gpu: { device, fullReadbackSlots: 0, blockSlots: 8 } });
      const full = await lib.createScorer({ scoring: 'webgpu', gpu: { device } });
      const overflow = await lib.createScorer({ scoring: 'webgpu', gpu: { device, fullReadbackSlots: 0, blockSlots: 8, candidateCapacity: 2 } });
      const cpu = new lib.CpuScorer(undefined);
      // 100 distinct documents, each stored three times: copies score exactly alike, so rankings
      // hold ties. Document i lives in store i % 3, so the copies sit in three different shards and
      // the scorers see one index of several shards whatever the precision's segment size.
      const stores = [0, 1, 2].map(() => new lib.MemoryStore({ precision }));
      const indexShards = async function* () {
        for (const s of stores) yield* s.shards();
      };
      const base = Array.from({ length: 100 }, (_, i) => lib.randomMatrix(i % 23 === 0 ? 0 : 1 + Math.floor(next() * 40), dim, next));
      for (let i = 0; i < 300; i++) await stores[i % 3].put([{ id: `doc-${String(i).padStart(4, '0')}`, matrix: { ...base[i % 100], data: base[i % 100].data.slice() } }]);
      for (const s of stores) await s.delete(['doc-0003', 'doc-0104', 'doc-0150', 'doc-0299']);
      let live = 0;
      for (const s of stores) live += (await s.stats()).documents;
      let slots = 0;
      let shards = 0;
      for await (const shard of indexShards()) {
        slots += shard.docIds.length;
        shards++;
      }
      // The candidates the GPU should find, from the CPU oracle's scores of every slot in index order:
      // T is the k-th largest maximum of blocks of min(8, slots / 2k) slots (blockSlots: 8 below).
      const expectedCandidates = async (query: unknown, k: number): Promise<[number, number]> => {
        const scores: number[] = [];
        for await (const shard of indexShards()) scores.push(...lib.maxSimShard(query, shard));
        const block = Math.min(8, Math.floor(scores.length / (2 * k)));
        const maxima = [];
        for (let b = 0; b < scores.length; b += block) maxima.push(Math.max(...scores.slice(b, b + block)));
        const t = maxima.sort((a, b) => b - a)[k - 1]!;
        const live = scores.filter((v) => v > -Infinity);
        return [live.filter((v) => v >= t + 1e-4).length, live.filter((v) => v >= t - 1e-4).length];
      };
      const rounds = [];
      for (let q = 0; q < 3; q++) {
        const query = lib.randomMatrix(32, dim, next);
        const all = await full.rank(query, indexShards, live);
        // k = 1, 10, past the live count, and the first k whose k-th and (k+1)-th scores tie.
        const tieAt = all.findIndex((h: Ranked, i: number) => i >= 1 && i + 1 < all.length && h.score === all[i + 1]!.score);
        for (const k of [1, 10, ...(tieAt >= 1 ? [tieAt + 1] : []), live + 5]) {
          const before = candidate.residency();
          const got = await candidate.rank(query, indexShards, k);
          const after = candidate.residency();
          const overflowBefore = overflow.residency();
          const overflowed = await overflow.rank(query, indexShards, k);
          const overflowAfter = overflow.residency();
          rounds.push({
            k,
            candidate: got,
            full: await full.rank(query, indexShards, k),
            cpu: await cpu.rank(query, indexShards, k),
            readBack: after.readBackBytes - before.readBackBytes,
            readBacks: after.readBacks - before.readBacks,
            candidates: after.candidates - before.candidates,
            expectedCandidates: k < live ? await expectedCandidates(query, k) : ([0, 0] as [number, number]),
            candidateRead: after.candidateReads > before.candidateReads,
            overflow: overflowed,
            overflowFullRead: overflowAfter.fullReads > overflowBefore.fullReads && overflowAfter.candidateReads === overflowBefore.candidateReads,
            tie: k < all.length && all[k - 1]!.score === all[k]!.score,
          });
        }
      }
      const runCase = async (store: { shards(): AsyncIterable<{ docIds: unknown[] }> }, k: number) => {
        let caseSlots = 0;
        for await (const shard of store.shards()) caseSlots = Math.max(caseSlots, shard.docIds.length);
        const query = lib.randomMatrix(32, dim, next);
        const before = candidate.residency();
        const got = await candidate.rank(query, () => store.shards(), k);
        const after = candidate.residency();
        return {
          slots: caseSlots,
          candidate: got,
          full: await full.rank(query, () => store.shards(), k),
          cpu: await cpu.rank(query, () => store.shards(), k),
          candidateRead: after.candidateReads > before.candidateReads && after.fullReads === before.fullReads,
          readBacks: after.readBacks - before.readBacks,
        };
      };
      // 300 slots of which only the first 20 stay live (the 280 deleted hold one row each, too few to
      // make the store compact them away): fewer than k blocks hold a live document, so the k-th
      // block maximum T is -Infinity and every live slot (no deleted one) is a candidate.
      const sparseStore = new lib.MemoryStore({ precision });
      await sparseStore.put(Array.from({ length: 300 }, (_, i) => ({ id: `s-${String(i).padStart(4, '0')}`, matrix: lib.randomMatrix(i < 20 ? 60 : 1, dim, next) })));
      await sparseStore.delete(Array.from({ length: 280 }, (_, i) => `s-${String(i + 20).padStart(4, '0')}`));
      const sparse = await runCase(sparseStore, 10);
      // 300 copies of one document: every score ties, so all 300 are candidates, more than the first
      // read-back holds (64 entries for k <= 16): the rest comes in a second read-back.
      const tiedStore = new lib.MemoryStore({ precision });
      const one = lib.randomMatrix(12, dim, next);
      await tiedStore.put(Array.from({ length: 300 }, (_, i) => ({ id: `t-${String(299 - i).padStart(4, '0')}`, matrix: { ...one, data: one.data.slice() } })));
      const tied = [await runCase(tiedStore, 1), await runCase(tiedStore, 10)];
      const pages = candidate.residency().pages;
      const error = await device.popErrorScope();
      const devices = [candidate.device, full.device, overflow.device];
      for (const s of [candidate, full, overflow]) s.dispose();
      device.destroy();
      return { rounds, slots, shards, pages, live, sparse, tied, validationError: error ? error.message : null, devices };
    },
    { url: BUNDLE_URL, precision },
  );
}

for (const precision of ['fp32', 'int8']) {
  test(`${precision}: top-k from a small GPU candidate read-back equals the full read-back and the CPU, ties and deletions included`, async ({ page }) => {
    test.setTimeout(180_000);
    const run = await topkRun(page, precision);
    expect(run.validationError).toBeNull();
    expect(run.devices).toEqual(['webgpu', 'webgpu', 'webgpu']);
    expect(run.live).toBe(296);
    expect(run.shards, 'the index spans several shards').toBeGreaterThanOrEqual(3);
    // ...packed into one GPU page (4 MiB): one MaxSim dispatch per query for all of them.
    expect(run.pages, 'GPU pages').toBe(1);
    let ties = 0;
    for (const r of run.rounds) {
      const what = `${precision} k=${r.k}`;
      expect(r.full).toHaveLength(Math.min(r.k, run.live));
      // Bit-for-bit what the full read-back gives: same ids, same order, same float scores.
      expect(r.candidate, `${what}: candidate path`).toEqual(r.full);
      expect(r.overflow, `${what}: overflow fallback`).toEqual(r.full);
      expectSameRanking(r.candidate, r.cpu, `${what} vs CPU`);
      expect(r.candidate.some((h) => ['doc-0003', 'doc-0104', 'doc-0150', 'doc-0299'].includes(h.id)), `${what}: deleted documents`).toBe(false);
      if (r.k < run.live) {
        // The candidate path ran for the whole index in ONE read-back of less than one float per slot.
        expect(r.candidateRead, `${what}: candidate path used`).toBe(true);
        expect(r.readBacks, `${what}: read-backs for ${run.shards} shards`).toBe(1);
        expect(r.readBack, `${what}: bytes read back`).toBeLessThan(run.slots * 4);
        // T was the k-th largest block maximum: the list held exactly the live slots scoring >= T.
        expect(r.candidates, `${what}: candidates`).toBeGreaterThanOrEqual(r.expectedCandidates[0]);
        expect(r.candidates, `${what}: candidates`).toBeLessThanOrEqual(r.expectedCandidates[1]);
        // At least k > 2 candidates never fit a 2-entry buffer: that query reads every score.
        if (r.k > 2) expect(r.overflowFullRead, `${what}: overflow read every score`).toBe(true);
        if (r.tie) ties++;
      } else {
        expect(r.candidateRead, `${what}: k past the live count reads every score`).toBe(false);
        expect(r.readBack).toBe(run.slots * 4);
        expect(r.readBacks).toBe(1);
      }
    }
    expect(ties, 'rankings with a tie at the k-th place').toBeGreaterThan(0);
    // 20 live documents in a shard of 300 slots: T is -Infinity, and the candidates are the live slots.
    expect(run.sparse.slots).toBe(300);
    expect(run.sparse.candidateRead).toBe(true);
    expect(run.sparse.readBacks).toBe(1);
    expect(run.sparse.full).toHaveLength(10);
    expect(run.sparse.candidate).toEqual(run.sparse.full);
    expectSameRanking(run.sparse.candidate, run.sparse.cpu, `${precision} mostly deleted`);
    // 300 tied candidates: a second read-back brings the rest, and the ids break the tie.
    for (const [i, tied] of run.tied.entries()) {
      const what = `${precision} all tied, k=${i === 0 ? 1 : 10}`;
      expect(tied.candidateRead, what).toBe(true);
      expect(tied.readBacks, what).toBe(2);
      expect(tied.candidate.map((h) => h.id), what).toEqual(Array.from({ length: i === 0 ? 1 : 10 }, (_, j) => `t-${String(j).padStart(4, '0')}`));
      expect(tied.candidate, what).toEqual(tied.full);
      expectSameRanking(tied.candidate, tied.cpu, what);
    }
  });
}

interface ChurnRound {
  what: string;
  live: number;
  vectorBytes: number;
  gpu: Ranked[];
  cpu: Ranked[];
  residency: { pages: number; rowBytes: number; freedBytes: number };
}

// Rows of 6 and 10 bytes: runs of documents start at any byte, which the pages must handle.
for (const { precision, dim, pageBytes } of [
  { precision: 'int8', dim: 6, pageBytes: 4096 },
  { precision: 'fp16', dim: 5, pageBytes: 4096 },
  { precision: 'fp32', dim: 64, pageBytes: 64 * 1024 },
]) {
  test(`${precision} dim ${dim}: shards packed into shared pages stay exact through appends, deletes and compaction, and freed rows are reclaimed`, async ({ page }) => {
    test.setTimeout(180_000);
    const run = await page.evaluate(
      async ({ url, precision, dim, pageBytes }) => {
        const lib = await import(/* @vite-ignore */ url);
        const next = lib.mulberry32(dim * 7 + precision.length);
        const device: GPUDevice = await lib.requestScoringDevice();
        device.pushErrorScope('validation');
        // Small pages, so that documents of several shards share pages and the index spans many.
        const scorer = await lib.createScorer({ scoring: 'webgpu', gpu: { device, maxPageBytes: pageBytes } });
        const cpu = new lib.CpuScorer(undefined);
        const stores = [0, 1, 2].map(() => new lib.MemoryStore({ precision }));
        const shards = async function* () {
          for (const s of stores) yield* s.shards();
        };
        let n = 0;
        const add = async (count: number) => {
          for (let i = 0; i < count; i++, n++) await stores[n % 3].put([{ id: `d${String(n).padStart(4, '0')}`, matrix: lib.randomMatrix(n % 11 === 0 ? 0 : 1 + Math.floor(next() * 40), dim, next) }]);
        };
        const rounds: ChurnRound[] = [];
        const round = async (what: string) => {
          let live = 0;
          let vectorBytes = 0;
          for (const s of stores) {
            const st = await s.stats();
            live += st.documents;
            vectorBytes += st.vectorBytes;
          }
          const q = lib.randomMatrix(9, dim, next);
          rounds.push({ what, live, vectorBytes, gpu: await scorer.rank(q, shards, live), cpu: await cpu.rank(q, shards, live), residency: scorer.residency() });
        };
        // Added in small batches, each made resident by a query: the three stores' runs interleave in the pages.
        for (let batch = 1; batch <= 10; batch++) {
          await add(15);
          await round(`${batch * 15} documents`);
        }
        // Five of every six documents of stores 0 and 1 deleted: their shards' dead rows outnumber
        // the live ones, so the stores rewrite them under new keys and the GPU frees the old rows,
        // two thirds of every page: pages that are mostly freed rows are repacked.
        const doomed = Array.from({ length: 150 }, (_, i) => i).filter((i) => i % 3 !== 2 && i % 18 >= 3);
        for (const s of stores) await s.delete(doomed.map((i) => `d${String(i).padStart(4, '0')}`));
        await round(`after deleting ${doomed.length}`);
        await add(120);
        for (const s of stores) await s.delete(['d0003', 'd0160', 'd0200']);
        await round('after 120 more and 3 deletes');
        const error = await device.popErrorScope();
        const out = { rounds, device: scorer.device, reason: scorer.fallbackReason ?? null, validationError: error ? error.message : null };
        scorer.dispose();
        device.destroy();
        return out;
      },
      { url: BUNDLE_URL, precision, dim, pageBytes },
    );
    expect(run.validationError).toBeNull();
    expect(run.device, run.reason ?? '').toBe('webgpu');
    for (const r of run.rounds) {
      const what = `${precision} dim ${dim}, ${r.what}`;
      expect(r.gpu.length, what).toBe(r.live);
      expectSameRanking(r.gpu, r.cpu, what);
      // Exactly the store's rows are resident; freed rows never outgrow the live ones by more than the one open page.
      expect(r.residency.rowBytes, `${what}: resident bytes`).toBe(r.vectorBytes);
      expect(r.residency.freedBytes, `${what}: freed bytes held`).toBeLessThanOrEqual(r.residency.rowBytes + pageBytes);
    }
    expect(run.rounds[9]!.residency.pages, 'the small pages make the index span several').toBeGreaterThan(3);
    // Of the 100 documents in stores 0 and 1, those at i % 18 < 3 stay (9 each).
    expect(run.rounds[10]!.live).toBe(150 - 82);
  });
}

test('rows on demand: shards read for the scan only are scored batch by batch as they come, each replacing the one before on the GPU, with the CPU ranking', async ({ page }) => {
  test.setTimeout(180_000);
  const run = await page.evaluate(
    async ({ url }) => {
      const lib = await import(/* @vite-ignore */ url);
      const dim = 128;
      const next = lib.mulberry32(61);
      const device: GPUDevice = await lib.requestScoringDevice();
      device.pushErrorScope('validation');
      // One transient shard per batch.
      const scorer = await lib.createScorer({ scoring: 'webgpu', gpu: { device, streamBatchBytes: 1 } });
      const cpu = new lib.CpuScorer(undefined);
      const name = `gpu-stream-${Date.now()}`;
      const store = await lib.IdbStore.open({ name, fingerprint: { ...lib.FINGERPRINT, dim }, precision: 'fp16' });
      // 750 documents of 40 rows: four segments, the last (the tail) partly filled.
      for (let b = 0; b < 5; b++) await store.put(Array.from({ length: 150 }, (_, i) => ({ id: `d${String(b * 150 + i).padStart(4, '0')}`, matrix: lib.randomMatrix(40, dim, next) })));
      await store.delete(['d0003', 'd0400']);
      await store.setRowResidency('on-demand');
      const seen: { transient: boolean; bytes: number; readBacks: number }[] = [];
      const traced = async function* () {
        for await (const s of store.shards()) {
          seen.push({ transient: s.transient === true, bytes: s.vectors.byteLength, readBacks: scorer.residency().readBacks });
          yield s;
        }
      };
      const q = lib.randomMatrix(16, dim, next);
      const gpu = await scorer.rank(q, traced, 50);
      const cpuHits = await cpu.rank(q, () => store.shards(), 50);
      const after = scorer.residency();
      const error = await device.popErrorScope();
      const out = { gpu, cpu: cpuHits, seen, after, device: scorer.device, reason: scorer.fallbackReason ?? null, validationError: error ? error.message : null };
      scorer.dispose();
      device.destroy();
      await store.close();
      indexedDB.deleteDatabase(`colbert-web:${name}`);
      return out;
    },
    { url: BUNDLE_URL },
  );
  expect(run.validationError).toBeNull();
  expect(run.device, run.reason ?? '').toBe('webgpu');
  expectSameRanking(run.gpu, run.cpu, 'streamed on demand');
  expect(run.seen.filter((s) => s.transient)).toHaveLength(3);
  expect(run.seen.filter((s) => !s.transient)).toHaveLength(1);
  // Each transient shard was scored (one read-back) before the next one was read.
  expect(run.seen.map((s) => s.readBacks)).toEqual([0, 1, 2, 3]);
  // Afterwards only the held tail stays resident: the streamed rows were freed batch by batch.
  expect(run.after.rowBytes).toBe(run.seen.find((s) => !s.transient)!.bytes);
});

test('a device lost mid-session falls back to the CPU, says why, and keeps answering', async ({ page }) => {
  test.setTimeout(120_000);
  const run = await page.evaluate(
    async ({ url }) => {
      const lib = await import(/* @vite-ignore */ url);
      const dim = 64;
      const next = lib.mulberry32(77);
      const device: GPUDevice = await lib.requestScoringDevice();
      const scorer = await lib.createScorer({ scoring: 'webgpu', gpu: { device } });
      const cpu = new lib.CpuScorer(undefined);
      const store = new lib.MemoryStore({ precision: 'fp32' });
      await store.put(Array.from({ length: 80 }, (_, i) => ({ id: `d${i}`, matrix: lib.randomMatrix(1 + (i % 9), dim, next) })));
      const queries = [0, 1, 2].map(() => lib.randomMatrix(8, dim, next));
      const before = await scorer.rank(queries[0], () => store.shards(), 10);
      const deviceBefore = scorer.device;
      device.destroy(); // what a driver reset or a lost GPU looks like to the page
      const during = await scorer.rank(queries[1], () => store.shards(), 10);
      const after = await scorer.rank(queries[2], () => store.shards(), 10);
      return {
        deviceBefore,
        deviceAfter: scorer.device,
        reason: scorer.fallbackReason ?? null,
        pairs: [
          [before, await cpu.rank(queries[0], () => store.shards(), 10)],
          [during, await cpu.rank(queries[1], () => store.shards(), 10)],
          [after, await cpu.rank(queries[2], () => store.shards(), 10)],
        ],
      };
    },
    { url: BUNDLE_URL },
  );
  expect(run.deviceBefore).toBe('webgpu');
  expect(run.deviceAfter).toBe('cpu');
  expect(run.reason).toMatch(/lost|destroyed/);
  run.pairs.forEach(([got, want], i) => expectSameRanking(got as Ranked[], want as Ranked[], `query ${i}`));
});

test('public API: scoring webgpu and cpu give the same Cranfield rankings for every precision; auto skips a software adapter', async ({ page }) => {
  const missing = libraryBuildMissing() ?? testModelsMissing() ?? (HAVE_SHARED ? null : SHARED_MISSING);
  test.skip(missing !== null, missing ?? '');
  test.setTimeout(600_000);
  const { loadCranfield } = await import('../fixtures/cranfield.ts');
  const { docs, queries } = await loadCranfield(CRANFIELD_DIR);
  const run = await page.evaluate(
    async ({ texts, queryTexts, hubUrl, repo }) => {
      const entry = '/dist/index.js';
      const lib = await import(/* @vite-ignore */ entry);
      const base = { model: repo, hubUrl, device: 'wasm' };
      const out: Record<string, unknown> = {};
      const t0 = performance.now();
      const lap = (what: string) => console.log(`[scoring page] ${what} at ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const auto = await lib.createSearch({ ...base, scoring: 'auto' });
      out['auto'] = { device: auto.scoringDevice, reason: auto.scoringFallbackReason ?? null };
      const matrices = await auto.encodeDocuments(texts.map((t: { text: string }) => t.text));
      const queryMatrices = [];
      for (const q of queryTexts) queryMatrices.push(await auto.encodeQuery(q));
      await auto.close();
      lap('encoded');
      for (const precision of ['fp32', 'fp16', 'int8']) {
        const gpu = await lib.createSearch({ ...base, scoring: 'webgpu', precision });
        const cpu = await lib.createSearch({ ...base, scoring: 'cpu', precision });
        const items = () => matrices.map((m: { data: Float32Array }, i: number) => ({ id: texts[i]!.id, embedding: { ...m, data: m.data.slice() } }));
        await gpu.addEmbeddings(items());
        await cpu.addEmbeddings(items());
        const pairs = [];
        for (const q of queryMatrices) pairs.push([await gpu.searchEmbedding(q, { k: 20 }), await cpu.searchEmbedding(q, { k: 20 })]);
        out[precision] = { pairs, gpuDevice: gpu.scoringDevice, gpuReason: gpu.scoringFallbackReason ?? null, cpuDevice: cpu.scoringDevice };
        await gpu.close();
        await cpu.close();
        lap(precision);
      }
      return out;
    },
    // The first 800 abstracts: SwiftShader runs the shader on the CPU, so GPU tests stay near 1000 documents.
    { texts: docs.filter((d) => d.text.trim() !== '').slice(0, 800).map((d) => ({ id: d.id, text: d.text })), queryTexts: queries.slice(0, 2).map((q) => q.text), hubUrl: testHubUrl(), repo: TEST_HUB_REPO },
  );
  const auto = run['auto'] as { device: string; reason: string | null };
  console.log(`[scoring] auto picked ${auto.device}${auto.reason ? ` (${auto.reason})` : ''}`);
  if (auto.device === 'cpu') expect(auto.reason).toMatch(/software/);
  for (const precision of ['fp32', 'fp16', 'int8']) {
    const r = run[precision] as { pairs: [Ranked[], Ranked[]][]; gpuDevice: string; gpuReason: string | null; cpuDevice: string };
    expect(r.gpuDevice, `${precision}: ${r.gpuReason ?? ''}`).toBe('webgpu');
    expect(r.cpuDevice).toBe('cpu');
    r.pairs.forEach(([gpu, cpu], i) => {
      expect(gpu).toHaveLength(20);
      expectSameRanking(gpu, cpu, `${precision} Cranfield query ${i}`);
    });
  }
});
