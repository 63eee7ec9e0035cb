/**
 * A deterministic plain-text corpus for tests that need an index large enough for the compressed
 * index to train (4096 tokens and more): paragraphs of words drawn per topic, so related
 * paragraphs share words. No Node imports (browser specs and Node tests both use it).
 */
import { mulberry32 } from './rng.ts';

const TOPICS = [
  ['glacier', 'moraine', 'ice', 'alpine', 'melt', 'valley', 'snow', 'crevasse', 'summit', 'retreat'],
  ['bread', 'yeast', 'flour', 'oven', 'dough', 'crust', 'sourdough', 'knead', 'rye', 'bake'],
  ['wing', 'airflow', 'boundary', 'layer', 'supersonic', 'mach', 'pressure', 'turbulence', 'drag', 'lift'],
  ['river', 'delta', 'sediment', 'flood', 'estuary', 'current', 'bank', 'meander', 'silt', 'tide'],
  ['violin', 'string', 'bow', 'melody', 'concert', 'orchestra', 'tuning', 'harmony', 'rosin', 'sonata'],
  ['comet', 'orbit', 'telescope', 'nucleus', 'tail', 'perihelion', 'dust', 'planet', 'gravity', 'asteroid'],
];

/** `paragraphs` paragraphs of `words` words each, separated by blank lines. */
export function corpusText(paragraphs: number, words = 40, seed = 1): string {
  const rand = mulberry32(seed);
  const out: string[] = [];
  for (let p = 0; p < paragraphs; p++) {
    const topic = TOPICS[p % TOPICS.length]!;
    const other = TOPICS[Math.floor(rand() * TOPICS.length)]!;
    const line = Array.from({ length: words }, () => (rand() < 0.8 ? topic : other)[Math.floor(rand() * 10)]!);
    out.push(`${line.join(' ')}.`);
  }
  return out.join('\n\n');
}
