/**
 * test/fixtures/cranfield.ts: the real collection parses to the counts and records in the files,
 * queries are numbered by position as cranqrel expects, and the judgments feed bench/metrics.ts.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gain, ndcgAtK, recallAtK } from '../../bench/metrics.ts';
import { loadCranfield, parseCranfieldDocs, parseCranfieldQrels, parseCranfieldQueries, type Cranfield } from '../fixtures/cranfield.ts';
import { CRANFIELD_DIR } from '../support/shared.ts';

const HAVE_CRANFIELD = existsSync(join(CRANFIELD_DIR, 'cran.all.1400'));
const MISSING = `skipped: Cranfield not found at ${CRANFIELD_DIR} (../shared exists on project machines and in CI only)`;

describe('Cranfield parsers on small inputs', () => {
  it('numbers queries by position, not by their .I ids, and reads CRLF files', () => {
    const queries = parseCranfieldQueries('.I 001\r\n.W\r\nfirst query\r\n.I 004\r\n.W\r\nsecond\r\nquery .\r\n');
    expect(queries).toEqual([
      { id: '1', text: 'first query' },
      { id: '2', text: 'second query .' },
    ]);
  });

  it('keeps the abstract whole when marker lines appear inside it, and does not repeat the title', () => {
    const docs = parseCranfieldDocs('.I 7\n.T\na title .\n.A\nsomeone\n.B\nj. 1\n.W\na title .\nfirst part\n.A\nsecond part\n.W\nthird part\n.I 8\n.T\n.A\n.B\n.W\n');
    expect(docs).toEqual([
      { id: '7', title: 'a title .', text: 'a title . first part second part third part' },
      { id: '8', title: '', text: '' },
    ]);
  });

  it('prefixes the title when the abstract does not start with it', () => {
    expect(parseCranfieldDocs('.I 1\n.T\nheading\n.W\nbody text\n')[0]?.text).toBe('heading body text');
  });

  it('reads grades including -1, and rejects malformed or repeated judgments', () => {
    const qrels = parseCranfieldQrels('1 184 2 \r\n1 486 -1\r\n2 12 1');
    expect([...(qrels.get('1') ?? [])]).toEqual([
      ['184', 2],
      ['486', -1],
    ]);
    expect(qrels.get('2')?.get('12')).toBe(1);
    expect(() => parseCranfieldQrels('1 184')).toThrow(/line 1/);
    expect(() => parseCranfieldQrels('1 184 2\n1 184 3')).toThrow(/twice/);
  });
});

describe.skipIf(!HAVE_CRANFIELD)(`the real Cranfield collection ${HAVE_CRANFIELD ? '' : MISSING}`, () => {
  let data: Cranfield | undefined;
  const load = async (): Promise<Cranfield> => (data ??= await loadCranfield(CRANFIELD_DIR));

  it('has 1400 documents with ids 1..1400 in order', async () => {
    const { docs } = await load();
    expect(docs).toHaveLength(1400);
    expect(docs.map((d) => d.id)).toEqual(Array.from({ length: 1400 }, (_, i) => String(i + 1)));
  });

  it('reads known documents: title + abstract, whitespace collapsed', async () => {
    const { docs } = await load();
    const byId = new Map(docs.map((d) => [d.id, d]));
    const first = byId.get('1');
    expect(first?.title).toBe('experimental investigation of the aerodynamics of a wing in a slipstream .');
    expect(first?.text.startsWith('experimental investigation of the aerodynamics of a wing in a slipstream . an experimental study of a wing in a propeller slipstream')).toBe(true);
    expect(first?.text.endsWith('an empirical evaluation of the destalling effects was made for the specific configuration of the experiment .')).toBe(true);
    expect(byId.get('1400')?.title).toBe('the buckling shear stress of simply-supported infinitely long plates with transverse stiffeners .');
    // 240 has stray ".A"/".B" lines inside its abstract: the text around them is kept.
    expect(byId.get('240')?.text).toContain('is made for a prandtl number of unity in low-speed flow without injection .');
    // 471 and 995 are empty in the source.
    expect(docs.filter((d) => d.text === '').map((d) => d.id)).toEqual(['471', '995']);
    expect(docs.every((d) => !/\s\s|\r|\n/.test(d.text))).toBe(true);
  });

  it('has 225 queries numbered 1..225 by position', async () => {
    const { queries } = await load();
    expect(queries).toHaveLength(225);
    expect(queries.map((q) => q.id)).toEqual(Array.from({ length: 225 }, (_, i) => String(i + 1)));
    expect(queries[0]?.text).toBe('what similarity laws must be obeyed when constructing aeroelastic models of heated high speed aircraft .');
    // Position 3 is ".I 004" in cran.qry; position 225 is ".I 365".
    expect(queries[2]?.text).toBe('what problems of heat conduction in composite slabs have been solved so far .');
    expect(queries[224]?.text).toBe('what design factors can be used to control lift-drag ratios at mach numbers above 5 .');
  });

  it('has 1837 judgments: 1612 graded 1-4 and one -1 per query', async () => {
    const { qrels } = await load();
    const grades = [...qrels.values()].flatMap((m) => [...m.values()]);
    expect(grades).toHaveLength(1837);
    const counts = Object.fromEntries([-1, 1, 2, 3, 4].map((g) => [g, grades.filter((x) => x === g).length]));
    expect(counts).toEqual({ '-1': 225, 1: 128, 2: 387, 3: 734, 4: 363 });
    expect(qrels.size).toBe(225);
    for (const judged of qrels.values()) {
      expect([...judged.values()].filter((g) => g === -1)).toHaveLength(1);
      expect([...judged.values()].some((g) => gain(g) > 0)).toBe(true);
    }
    expect(qrels.get('1')?.get('184')).toBe(2);
    expect(qrels.get('1')?.get('486')).toBe(-1);
    expect(qrels.get('2')?.get('12')).toBe(1);
    expect(qrels.get('225')?.get('1188')).toBe(-1);
  });

  it('gives nDCG@10 = 1 and full recall to the ideal ranking of every query', async () => {
    const { qrels } = await load();
    for (const judged of qrels.values()) {
      const ideal = [...judged].sort((x, y) => gain(y[1]) - gain(x[1])).map(([doc]) => doc);
      const relevant = ideal.filter((doc) => gain(judged.get(doc)) > 0).length;
      expect(ndcgAtK(ideal, judged, 10)).toBeCloseTo(1, 12);
      expect(recallAtK(ideal, judged, relevant)).toBe(1);
      expect(ndcgAtK([...ideal].reverse(), judged, 10)).toBeLessThan(1);
    }
  });
});
