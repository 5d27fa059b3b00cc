// Link events from the kernel (rtnetlink), through `ip -o monitor link`: a
// device appearing, disappearing, or changing carrier reaches us as an event,
// with no polling.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface LinkEvent {
  kind: 'new' | 'deleted';
  ifindex: number;
  name: string;
  adminUp: boolean;
  /** Carrier: the device is up and its lower layer too. */
  carrier: boolean;
  /** The device's MTU (absent on a deletion line that omits it). */
  mtu?: number;
}

const LINE = /^(Deleted )?(\d+): ([^:@\s]+)(?:@\S+)?: <([^>]*)>/;

/** One line of `ip -o monitor link`, or undefined for lines about something else. */
export function parseLinkEvent(line: string): LinkEvent | undefined {
  const m = LINE.exec(line.trim());
  if (!m) return undefined;
  const flags = m[4]!.split(',');
  const adminUp = flags.includes('UP');
  const mtu = / mtu (\d+)/.exec(line);
  return {
    kind: m[1] ? 'deleted' : 'new',
    ifindex: Number(m[2]),
    name: m[3]!,
    adminUp,
    carrier: adminUp && flags.includes('LOWER_UP') && !flags.includes('NO-CARRIER'),
    ...(mtu ? { mtu: Number(mtu[1]) } : {}),
  };
}

export class LinkMonitor {
  private child?: ChildProcess;
  private stopped = false;

  constructor(private readonly onEvent: (ev: LinkEvent) => void, private readonly onError: (err: Error) => void) {}

  start(): void {
    const child = spawn('ip', ['-o', 'monitor', 'link'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const ev = parseLinkEvent(line);
      if (ev) this.onEvent(ev);
    });
    child.on('error', (err) => this.onError(err));
    child.on('exit', (code) => {
      if (this.stopped) return;
      this.onError(new Error(`ip monitor exited with status ${code}; restarting it`));
      setTimeout(() => !this.stopped && this.start(), 1000);
    });
  }

  stop(): void {
    this.stopped = true;
    this.child?.kill();
  }
}
