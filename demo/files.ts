/**
 * Reading dropped or picked files as plain text. HTML is parsed with DOMParser into an inert
 * document (no scripts run, nothing loads) and only its text is kept; nothing read here is ever
 * inserted into the page as HTML.
 */
import { sniffText } from '../src/text/sniff.ts';

/** A document read from a file or pasted. */
export interface SourceDocument {
  /** Shown as text only. */
  name: string;
  text: string;
}

/** Extensions the demo reads. */
export const ACCEPTED_EXTENSIONS = ['.txt', '.md', '.markdown', '.html', '.htm'] as const;
/** Files over this size are refused: the demo indexes in the page, not a data centre. */
export const MAX_FILE_BYTES = 5 * 1024 * 1024;

/** Elements whose end starts a new line in the extracted text. */
const BLOCKS = new Set(['P', 'DIV', 'SECTION', 'ARTICLE', 'HEADER', 'FOOTER', 'MAIN', 'ASIDE', 'NAV', 'LI', 'UL', 'OL', 'DL', 'DT', 'DD', 'TR', 'TABLE', 'PRE', 'BLOCKQUOTE', 'FIGURE', 'FIGCAPTION', 'H1', 'H2', 'H3', 'H4', 'H5', 'H6', 'HR', 'BR']);

/**
 * The readable text of an HTML document: title and body text, block elements separated by blank
 * lines, scripts, styles and templates dropped. Parsing happens in a DOMParser document, which has
 * no browsing context: its scripts never run and its images never load.
 */
export function htmlToText(html: string): { title: string; text: string } {
  const doc = new DOMParser().parseFromString(html, 'text/html');
  for (const el of doc.querySelectorAll('script, style, noscript, template, iframe, object, embed, svg, math')) el.remove();
  const parts: string[] = [];
  const walk = (node: Node): void => {
    if (node.nodeType === Node.TEXT_NODE) {
      parts.push(node.textContent ?? '');
      return;
    }
    if (node.nodeType !== Node.ELEMENT_NODE) return;
    const block = BLOCKS.has((node as Element).tagName);
    if (block) parts.push('\n\n');
    for (const child of node.childNodes) walk(child);
    if (block) parts.push('\n\n');
  };
  if (doc.body) walk(doc.body);
  const text = parts
    .join('')
    .replace(/[ \t\r\f\v]+/g, ' ')
    .replace(/ *\n */g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
  return { title: (doc.title ?? '').trim(), text };
}

/** The lower-case extension of a file name, with its dot ('' when none). */
export function extensionOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot <= 0 ? '' : name.slice(dot).toLowerCase();
}

/**
 * Reads a .txt, .md or .html file as text; throws an Error with a readable message otherwise.
 * The content decides, not the name: an executable or an image renamed .txt is refused with
 * what it is (src/text/sniff.ts).
 */
export async function readDocumentFile(file: File): Promise<SourceDocument> {
  const ext = extensionOf(file.name);
  if (!(ACCEPTED_EXTENSIONS as readonly string[]).includes(ext)) {
    throw new Error(`${file.name}: only ${ACCEPTED_EXTENSIONS.join(', ')} files can be added`);
  }
  if (file.size > MAX_FILE_BYTES) throw new Error(`${file.name}: larger than ${MAX_FILE_BYTES / 1024 / 1024} MB`);
  const sniffed = await sniffText(new Uint8Array(await file.arrayBuffer()), file.name);
  if (!sniffed.ok) throw new Error(sniffed.reason);
  const raw = sniffed.text;
  const text = ext === '.html' || ext === '.htm' ? htmlToText(raw).text : raw.replace(/\r\n?/g, '\n');
  if (text.trim() === '') throw new Error(`${file.name}: no text in it`);
  return { name: file.name, text };
}
