#!/usr/bin/env node
/**
 * The `colbert-web` command: one entry, one file per subcommand. Adding a subcommand is one file
 * exporting `run(argv)` and `USAGE`, plus one line in {@link COMMANDS}.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface Command {
  USAGE: string;
  run(argv: string[]): Promise<number>;
}

/** Subcommand → its module, loaded on demand. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  convert: () => import('./convert.ts'),
  index: () => import('./index-command.ts'),
  export: () => import('./export.ts'),
};

const HELP = `Usage: colbert-web <command> [options]

Commands:
  ${Object.keys(COMMANDS).join('\n  ')}

Run \`colbert-web <command> --help\` for a command's options.`;

/** Parses argv (without node and script) and runs the subcommand; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    (name === undefined ? console.error : console.log)(HELP);
    return name === undefined ? 2 : 0;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) {
    console.error(`Unknown command ${JSON.stringify(name)}.\n\n${HELP}`);
    return 2;
  }
  return (await load()).run(rest);
}

/** True when this module is the process's entry (also through npm's bin symlink). */
function invokedDirectly(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return pathToFileURL(realpathSync(entry)).href === import.meta.url;
  } catch {
    return false;
  }
}
if (invokedDirectly()) process.exitCode = await main(process.argv.slice(2));
