import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};
const LEVEL_COLOURS: Record<number, string> = { 40: '\x1b[33m', 50: '\x1b[31m', 60: '\x1b[31m' };
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

/** One readable line per record for people at a terminal: `12:00:01 INFO  message key=value`. */
export function formatPretty(line: string, colour: boolean): string {
  const record = JSON.parse(line) as Record<string, unknown> & { level: number; time: number; msg?: string };
  const fields = Object.entries(record)
    .filter(([name]) => !HIDDEN.has(name))
    .map(([name, value]) => `${name}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  const time = new Date(record.time).toISOString().slice(11, 19);
  const level = LEVEL_NAMES[record.level] ?? String(record.level);
  const paint = colour ? (LEVEL_COLOURS[record.level] ?? '') : '';
  const text = [time, `${paint}${level}${paint ? '\x1b[0m' : ''}`, record.msg ?? '', ...fields].join(' ');
  return `${text}\n`;
}

/**
 * pino logger: JSON lines (for CloudWatch and log shippers) unless stderr is a terminal, where the same
 * records are printed as short readable lines; no pretty-printer dependency is needed for that.
 */
export function createLogger(options: { level?: string; name?: string; pretty?: boolean } = {}): Logger {
  const pretty = options.pretty ?? process.stderr.isTTY === true;
  const destination: DestinationStream = pretty
    ? { write: (line) => process.stderr.write(formatPretty(line, true)) }
    : pino.destination(2);
  return pino({ level: options.level ?? 'info', name: options.name, base: undefined }, destination);
}
