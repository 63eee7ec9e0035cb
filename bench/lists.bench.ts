/**
 * The inverted lists' code (src/store/lists.ts) against plain delta varints (the code before, the
 * baseline), on lists shaped like a 10M-token index's (62,502 documents, lists of about 250) and
 * a 1M-token one's (6,241 documents, lists of about 400): bytes per entry and the time to decode
 * the lists one query probes (64 at 10M: 32 query tokens x nprobe 2; 96 at 1M: nprobe 3).
 *
 *   npx tsx bench/lists.bench.ts        (or: npm run bench -- lists)
 */
import { seededRandom } from '../src/score/train.ts';
import { decodeList, encodeList, listBytes, VARINT_LIST } from '../src/store/lists.ts';

function varintList(slots: Uint32Array): Uint8Array {
  const out: number[] = [VARINT_LIST];
  let prev = 0;
  for (const s of slots) {
    let d = s - prev;
    prev = s;
    while (d >= 0x80) {
      out.push((d & 0x7f) | 0x80);
      d = Math.floor(d / 128);
    }
    out.push(d);
  }
  return Uint8Array.from(out);
}

const rows = ['| lists | code | bytes / entry | ms to decode one query\'s lists | vs varint |', '| --- | --- | ---: | ---: | ---: |'];
for (const [label, documents, length, probed] of [['10M tokens', 62_502, 250, 64], ['1M tokens', 6_241, 400, 96]] as const) {
  const next = seededRandom(1);
  const ef: Uint8Array[] = [];
  const varint: Uint8Array[] = [];
  for (let k = 0; k < probed; k++) {
    const set = new Set<number>();
    while (set.size < length) set.add(Math.floor(next() * documents));
    const slots = Uint32Array.from([...set].sort((a, b) => a - b));
    const bytes = new Uint8Array(listBytes(slots, 0, length));
    encodeList(slots, 0, length, bytes, 0);
    ef.push(bytes);
    varint.push(varintList(slots));
  }
  const out = new Uint32Array(length);
  const time = (lists: Uint8Array[]) => {
    const runs = 2000;
    let check = 0;
    const t = performance.now();
    for (let r = 0; r < runs; r++) for (const l of lists) check += decodeList(l, 0, l.length, out);
    if (check !== runs * lists.length * length) throw new Error('decoded the wrong number of entries');
    return (performance.now() - t) / runs;
  };
  time(ef);
  time(varint);
  const base = time(varint);
  const now = time(ef);
  const per = (lists: Uint8Array[]) => (lists.reduce((n, l) => n + l.length, 0) / (probed * length)).toFixed(3);
  rows.push(`| ${label}: ${probed} lists of ${length} of ${documents} documents | delta varint (baseline) | ${per(varint)} | ${base.toFixed(3)} | 1x |`);
  rows.push(`| | this code (${ef[0]![0] === VARINT_LIST ? 'varint' : 'Elias-Fano'}) | ${per(ef)} | ${now.toFixed(3)} | ${(now / base).toFixed(1)}x the time |`);
}
console.log(rows.join('\n'));
