// The demo: builds four hosts in network namespaces, runs vswitchd on the
// embedded default config (config/default.yaml) and shows what crosses it:
// hosts of one VLAN reach each other, hosts of different VLANs do not, and the
// host stack reaches VLAN 10 through the internal port.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/config.js';
import { Switch } from '../daemon/switch.js';
import { sh } from '../ports/hygiene.js';
import { createLogger } from '../operate/log.js';
import { projectRoot } from '../project-root.js';

const HOSTS = [1, 2, 3, 4];
const SUBNET = '169.254.50';  // link-local: stays on this machine
const HOST_STACK_IP = `${SUBNET}.254`;

async function buildTopology(): Promise<void> {
  await teardown();
  for (const n of HOSTS) {
    const ns = `vsd-demo-h${n}`;
    await sh('ip', ['netns', 'add', ns]);
    await sh('ip', ['link', 'add', ns, 'numtxqueues', '2', 'numrxqueues', '2', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'address', `02:de:00:00:00:0${n}`]);
    await sh('ip', ['-n', ns, 'addr', 'add', `${SUBNET}.${n}/24`, 'dev', 'eth0']);
    await sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
}

async function teardown(): Promise<void> {
  for (const n of HOSTS) {
    await sh('ip', ['netns', 'del', `vsd-demo-h${n}`]).catch(() => undefined);
    await sh('ip', ['link', 'del', `vsd-demo-h${n}`]).catch(() => undefined);
  }
}

async function ping(from: string | null, to: string): Promise<boolean> {
  const cmd = ['ping', '-c', '3', '-i', '0.2', '-W', '1', to];
  const full = from ? ['ip', 'netns', 'exec', from, ...cmd] : cmd;
  return sh(full[0]!, full.slice(1)).then(() => true, () => false);
}

async function iperf(from: string, to: string, toIp: string): Promise<number> {
  await sh('ip', ['netns', 'exec', to, 'iperf3', '-s', '-1', '-D']);
  await new Promise((r) => setTimeout(r, 300));
  const out = await sh('ip', ['netns', 'exec', from, 'iperf3', '-c', toIp, '-t', '3', '-J']);
  const bps = (JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
  return bps / 1e9;
}

export async function demo(hold: boolean): Promise<number> {
  const config = loadConfig(path.join(projectRoot, 'config', 'default.yaml'));
  const log = createLogger('warn');
  await buildTopology();
  const sw = new Switch(config, log);
  let failures = 0;
  try {
    await sw.start();
    await sh('ip', ['addr', 'add', `${HOST_STACK_IP}/24`, 'dev', config.bridge]);
    const expect = async (what: string, result: Promise<boolean>, want: boolean) => {
      const got = await result;
      if (got !== want) failures++;
      console.log(`${got === want ? 'ok  ' : 'FAIL'}  ${what}: ${got ? 'reachable' : 'unreachable'}${got === want ? '' : ` (expected ${want ? 'reachable' : 'unreachable'})`}`);
    };
    console.log(`vswitchd demo: 4 hosts in namespaces, switch ports ${sw.ports.list().map((p) => `${p.name}(${p.xdpMode})`).join(' ')}\n`);
    await expect('h1 -> h2, both VLAN 10', ping('vsd-demo-h1', `${SUBNET}.2`), true);
    await expect('h3 -> h4, both VLAN 20', ping('vsd-demo-h3', `${SUBNET}.4`), true);
    await expect('h1 -> h3, VLAN 10 to VLAN 20', ping('vsd-demo-h1', `${SUBNET}.3`), false);
    await expect('host stack (internal port) -> h1, VLAN 10', ping(null, `${SUBNET}.1`), true);
    await expect('host stack (internal port) -> h4, VLAN 20', ping(null, `${SUBNET}.4`), false);
    console.log(`\niperf3 TCP h1 -> h2 through the switch: ${(await iperf('vsd-demo-h1', 'vsd-demo-h2', `${SUBNET}.2`)).toFixed(2)} Gbit/s`);
    console.log('\nFDB:');
    for (const e of sw.fdbView()) console.log(`  vlan ${e.vlan}  ${e.mac}  ${e.port}`);
    console.log('\nPort counters (rx/tx of which through the kernel fast path (tc or XDP), the rest through the AF_XDP hot loop):');
    for (const [name, c] of Object.entries(sw.portCounters())) {
      const share = (all: number, fast: number) => `${String(all).padStart(8)} (fast ${String(fast).padStart(8)})`;
      console.log(
        `  ${name.padEnd(12)} rx ${share(c.rx_packets, c.paths.fast.rx_packets)}  tx ${share(c.tx_packets, c.paths.fast.tx_packets)}  flood ${c.flood_packets}`,
      );
    }
    if (hold) {
      console.log(`\nThe switch keeps running: try vswitchctl --socket ${config.control.socket} fdb show, curl ${config.metrics.listen}/metrics. Ctrl-C stops it.`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
  } catch (err) {
    console.error(`demo failed: ${(err as Error).message}`);
    failures++;
  } finally {
    await sw.stop();
    await teardown();
  }
  console.log(failures === 0 ? '\ndemo: all checks passed' : `\ndemo: ${failures} check(s) failed`);
  return failures === 0 ? 0 : 1;
}

const { values } = parseArgs({ options: { hold: { type: 'boolean', default: false } } });
demo(values.hold ?? false).then((code) => process.exit(code));
