// FRR (Debian's frr: zebra + bgpd) for one test "hypervisor": its own daemons inside a
// network namespace, with private config, pid, zserv and vty sockets in /run/vevpn-*,
// so nothing touches the system's FRR service.
import { chownSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { execFileSync } from 'node:child_process';
import { run, sleep, type Cleanup } from './netns.js';

const FRR_BIN = '/usr/lib/frr';

export interface FrrOptions {
  ns: string;
  /** A unique name: the run directory is /run/vevpn-<name>. */
  name: string;
  asn: number;
  routerId: string;
  /** The underlay address bgpd listens on, and the iBGP neighbour's. */
  listen: string;
  neighbor: string;
}

/** The bgpd config a vswitchd VTEP needs: one iBGP EVPN session, advertise-all-vni (README shows it too). */
export function bgpdConfig(o: Pick<FrrOptions, 'asn' | 'routerId' | 'neighbor'>, logFile: string): string {
  return `frr defaults datacenter
hostname bgpd-${o.routerId}
log file ${logFile}
router bgp ${o.asn}
 bgp router-id ${o.routerId}
 no bgp default ipv4-unicast
 neighbor ${o.neighbor} remote-as ${o.asn}
 neighbor ${o.neighbor} timers 3 9
 neighbor ${o.neighbor} timers connect 1
 address-family l2vpn evpn
  neighbor ${o.neighbor} activate
  advertise-all-vni
 exit-address-family
`;
}

export class Frr {
  readonly dir: string;

  constructor(readonly o: FrrOptions) {
    this.dir = `/run/vevpn-${o.name}`;
  }

  /** Writes the configs and starts zebra, then bgpd (both daemonised, as user frr). */
  async start(): Promise<void> {
    const { dir, o } = this;
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}/zebra.conf`, `hostname zebra-${o.routerId}\nlog file ${dir}/zebra.log\n`);
    writeFileSync(`${dir}/bgpd.conf`, bgpdConfig(o, `${dir}/bgpd.log`));
    const frr = frrIds();
    for (const f of ['', '/zebra.conf', '/bgpd.conf']) chownSync(`${dir}${f}`, frr.uid, frr.gid);
    const common = ['-d', '-z', `${dir}/zserv.api`, '--vty_socket', dir];
    await run([`${FRR_BIN}/zebra`, ...common, '-f', `${dir}/zebra.conf`, '-i', `${dir}/zebra.pid`], { ns: o.ns });
    await run([`${FRR_BIN}/bgpd`, ...common, '-f', `${dir}/bgpd.conf`, '-i', `${dir}/bgpd.pid`, '-l', o.listen], { ns: o.ns });
  }

  /** SIGTERM (a clean stop: bgpd closes its sessions) to bgpd and zebra; waits until both are gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    for (const d of ['bgpd', 'zebra']) {
      const pid = this.pid(d);
      if (pid === undefined) continue;
      try {
        process.kill(pid, signal);
      } catch {
        continue;
      }
      for (let i = 0; i < 100 && alive(pid); i++) await sleep(50);
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  }

  private pid(daemon: string): number | undefined {
    try {
      return Number(readFileSync(`${this.dir}/${daemon}.pid`, 'utf8').trim()) || undefined;
    } catch {
      return undefined;
    }
  }

  async vtysh(cmd: string): Promise<string> {
    return (await run(['vtysh', '--vty_socket', this.dir, '-c', cmd], { ns: this.o.ns, check: false })).stdout;
  }

  logs(): string {
    const read = (f: string) => {
      try {
        return readFileSync(`${this.dir}/${f}`, 'utf8');
      } catch {
        return '';
      }
    };
    return `--- ${this.dir}/zebra.log ---\n${read('zebra.log')}\n--- bgpd.log ---\n${read('bgpd.log')}`;
  }

  /** Stops the daemons and removes the run directory when the test ends. */
  register(cleanup: Cleanup): void {
    cleanup.add(async () => {
      await this.stop('SIGKILL');
      rmSync(this.dir, { recursive: true, force: true });
    });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function frrIds(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'frr'], { encoding: 'utf8' }).trim());
  return userInfo().uid === 0 ? { uid: id('-u'), gid: id('-g') } : { uid: -1, gid: -1 };
}

export function frrInstalled(): boolean {
  try {
    execFileSync(`${FRR_BIN}/zebra`, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
