// Logs: structured JSON lines (pino) by default; readable lines when stdout
// is a terminal, so an operator running it by hand can read it.
import { writeSync } from 'node:fs';
import { pino, type DestinationStream, type Logger } from 'pino';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** One pino JSON line as "HH:MM:SS.mmm LEVEL message key=value ...". */
export function prettyLine(json: string): string {
  const { level, time, msg, name: _name, pid: _pid, hostname: _host, ...rest } = JSON.parse(json) as Record<string, unknown>;
  const when = new Date(Number(time)).toISOString().slice(11, 23);
  const fields = Object.entries(rest).map(([k, v]) => ` ${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return `${when} ${(LEVEL_NAMES[Number(level)] ?? String(level)).padEnd(5)} ${String(msg ?? '')}${fields.join('')}\n`;
}

function prettyStream(): DestinationStream {
  return { write: (line: string) => void writeSync(1, prettyLine(line)) };
}

export function createLogger(level: LogLevel, format: 'json' | 'pretty' = process.stdout.isTTY ? 'pretty' : 'json'): Logger {
  const options = { level, base: { name: 'vswitchd' } };
  // Written synchronously: a restart re-executes or leaves the process at once
  // (exec, _exit), and a line still buffered then, such as "restarting", is lost.
  return format === 'pretty' ? pino(options, prettyStream()) : pino(options, pino.destination({ fd: 1, sync: true }));
}
