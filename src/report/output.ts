import { Chalk, type ChalkInstance } from 'chalk';
import { redactedJson, redactText } from '../config/redact.js';

/**
 * Where and how a command speaks. stdout carries results (one JSON document with --json);
 * stderr carries progress and logs. Everything written passes through redaction.
 */
export interface Output {
  json: boolean;
  quiet: boolean;
  /** stdout and stderr are terminals: tables and live progress; otherwise plain lines. */
  tty: boolean;
  color: ChalkInstance;
  /** A result line or table on stdout (suppressed with --json). */
  print(text: string): void;
  /** Progress and notes on stderr (suppressed with --quiet). */
  info(text: string): void;
  /** Warnings and errors on stderr, always shown. */
  error(text: string): void;
  /** The one JSON document on stdout (only with --json). */
  document(doc: unknown): void;
  /**
   * A piece of the one JSON document, for documents too large to hold (`tenant list --json`
   * streamed): written as is, redacted, only with --json. The caller makes it one document.
   */
  documentPart(text: string): void;
  /**
   * The one way a registered secret reaches stdout (`tenant credentials`: a new password, shown
   * once): `text` as is where it holds `secret`, every other secret scrubbed. Written with or
   * without --json; the caller gives the document or the text.
   */
  reveal(text: string, secret: string): void;
}

export interface OutputOptions {
  json?: boolean;
  quiet?: boolean;
  color?: boolean;
  env?: NodeJS.ProcessEnv;
  stdout?: NodeJS.WriteStream;
  stderr?: NodeJS.WriteStream;
}

export function createOutput(opts: OutputOptions = {}): Output {
  const env = opts.env ?? process.env;
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  const tty = Boolean(stdout.isTTY && stderr.isTTY);
  // chalk does not read NO_COLOR itself; set its level from the flags and the environment.
  const colorOn = opts.color !== false && !('NO_COLOR' in env) && Boolean(stderr.isTTY) && env.TERM !== 'dumb';
  const color = new Chalk({ level: colorOn ? 1 : 0 });
  const json = Boolean(opts.json);
  const quiet = Boolean(opts.quiet);
  return {
    json,
    quiet,
    tty,
    color,
    print(text) {
      if (!json) stdout.write(`${redactText(text)}\n`);
    },
    info(text) {
      if (!quiet) stderr.write(`${redactText(text)}\n`);
    },
    error(text) {
      stderr.write(`${redactText(text)}\n`);
    },
    document(doc) {
      if (json) stdout.write(`${redactedJson(doc, 2)}\n`);
    },
    documentPart(text) {
      if (json) stdout.write(redactText(text));
    },
    reveal(text, secret) {
      stdout.write(`${text.split(secret).map(redactText).join(secret)}\n`);
    },
  };
}
