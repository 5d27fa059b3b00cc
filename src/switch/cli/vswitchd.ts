// vswitchd: the daemon's command line.
import { parseArgs } from 'node:util';
import type { Switch } from '../daemon/switch.js';
import type { LogLevel } from '../operate/log.js';
import { VERSION } from '../operate/version.js';

const USAGE = `usage: vswitchd --config FILE [--check] [--log-level LEVEL]

  --config FILE      the switch configuration (YAML; see config/switch.example.yaml)
  --check            validate the configuration and exit (0: valid, 2: errors)
  --log-level LEVEL  trace | debug | info | warn | error (overrides log.level)
  --log-format FMT   json | pretty (default: pretty on a terminal, json otherwise)
  --version          print the version
  --help             this text
`;

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

export async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        check: { type: 'boolean', default: false },
        'log-level': { type: 'string' },
        'log-format': { type: 'string' },
        version: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }).values;
  } catch (err) {
    process.stderr.write(`vswitchd: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.help) return void process.stdout.write(USAGE), 0;
  if (args.version) return void process.stdout.write(`vswitchd ${VERSION}\n`), 0;
  if (!args.config) {
    process.stderr.write(`vswitchd: --config is required\n${USAGE}`);
    return 2;
  }
  const level = args['log-level'];
  if (level !== undefined && !LEVELS.includes(level)) {
    process.stderr.write(`vswitchd: --log-level must be one of ${LEVELS.join(', ')}\n`);
    return 2;
  }

  const format = args['log-format'];
  if (format !== undefined && format !== 'json' && format !== 'pretty') {
    process.stderr.write('vswitchd: --log-format must be json or pretty\n');
    return 2;
  }

  // A restart: the handed-over datapath forwards again before the config and the
  // rest of the daemon are loaded (they take most of a second; see daemon/early.ts).
  const inherited = args.check ? undefined : (await import('../daemon/early.js')).takeInherited();
  // The workers' threads boot while the datapath is built; loading the config now would take
  // the CPU they need (2 cores here: a new pair talked 40-60 ms after the early start, the
  // threads booting). Bounded: a worker that cannot start is the Supervisor's to report.
  if (inherited?.early) await Promise.race([inherited.early.supervisor.whenRunning(), new Promise((r) => setTimeout(r, 250))]);
  const { ConfigError, loadConfig } = await import('../config/config.js');
  let config;
  try {
    config = loadConfig(args.config);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      // The early start's datapath stays for the next start (no destructor may detach it).
      if (inherited?.early) inherited.native.exitNow(2);
      return 2;
    }
    throw err;
  }
  if (args.check) {
    process.stdout.write(`${args.config}: configuration is valid (${config.ports.length} ports, ${config.bonds.length} bonds)\n`);
    return 0;
  }

  // Loaded only to run: --check stays quick (the daemon's modules take a good part of a second here).
  const [{ Switch }, { createLogger }] = await Promise.all([import('../daemon/switch.js'), import('../operate/log.js')]);
  const log = createLogger((level ?? config.log.level) as LogLevel, format);
  let sw: Switch | undefined;
  try {
    sw = new Switch(config, log, args.config, inherited);
    await sw.start();
    sw.native.sdNotify(`READY=1\nSTATUS=forwarding on ${sw.ports.list().length} ports\nMAINPID=${process.pid}`);
  } catch (err) {
    // One line for the operator (and the journal); the log keeps the detail.
    const reason = err instanceof Error ? err.message : String(err);
    log.error({ err }, 'start failed');
    process.stderr.write(`vswitchd: cannot start: ${reason}\n`);
    await sw?.stop().catch(() => undefined);
    return 1;
  }
  const running = sw;
  await new Promise<void>((resolve) => {
    const finish = (signal: string) => {
      log.info({ signal }, 'stopping');
      resolve();
    };
    // A stop: everything goes (programs, created devices, the fd store's copies).
    process.once('SIGTERM', () => finish('SIGTERM'));
    process.once('SIGINT', () => finish('SIGINT'));
    // systemd's RestartKillSignal= (config/vswitchd.service): a restart, not a stop.
    // The datapath stays; the fd store hands it to the next start.
    process.once('SIGUSR2', () => {
      running.native.sdNotify('STOPPING=1');
      void running.serialize(() => running.restartKeepingDatapath(false));
    });
    process.on('SIGHUP', () => {
      running.native.sdNotify('RELOADING=1');
      // reload() logs both outcomes; a refused reload leaves the running config.
      void running.reload().catch(() => undefined).finally(() => running.native.sdNotify('READY=1'));
    });
  });
  running.native.sdNotify('STOPPING=1');
  await running.stop();
  return 0;
}
