// Structured logs (JSON lines on stdout).
import { pino, type Logger } from 'pino';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export function createLogger(level: LogLevel): Logger {
  return pino({ level, base: { name: 'vswitchd' } });
}
