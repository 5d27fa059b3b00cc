// Ports that come and go all day (VMs and containers on a hypervisor) must not cost the
// daemon anything that stays: 100 `port add/del` cycles and 20 deletions and re-creations
// of a port's device leave its open fds and the BPF programs it has loaded where they were.

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import test from 'ava';
import { accessPort, eventually, startDaemon, type Daemon } from '../helpers/daemon.js';
import { addHosts, cleanupFor, pingUntil, run, sleep, type Host } from '../helpers/netns.js';

const ADD_DEL_CYCLES = 100;
const DEVICE_CYCLES = 20;

interface BpfProg {
  id: number;
  name?: string;
  map_ids?: number[];
}

/** The daemon's open fds, and the ids of the BPF maps among them. */
function daemonFds(pid: number): { count: number; mapIds: Set<number> } {
  const mapIds = new Set<number>();
  let count = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    count++;
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:bpf-map') continue;
      const id = /^map_id:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (id) mapIds.add(Number(id[1]));
    } catch {
      // closed meanwhile
    }
  }
  return { count, mapIds };
}

/**
 * vswitchd_* programs loaded in the kernel that belong to this daemon: they use its maps
 * (every port's programs share the daemon's port table), whoever holds them. Other daemons
 * on the host have maps of their own, so they do not count.
 */
async function daemonPrograms(pid: number): Promise<number[]> {
  const { mapIds } = daemonFds(pid);
  const progs = JSON.parse((await run(['bpftool', '-j', 'prog', 'show'])).stdout || '[]') as BpfProg[];
  return progs.filter((p) => p.name?.startsWith('vswitchd_') && p.map_ids?.some((m) => mapIds.has(m))).map((p) => p.id).sort();
}

async function snapshot(sw: Daemon): Promise<{ fds: number; progs: number[] }> {
  const pid = sw.proc.pid!;
  return { fds: daemonFds(pid).count, progs: await daemonPrograms(pid) };
}

test.serial('100 port add/del cycles and 20 device re-creations leave fds and loaded programs flat', async (t) => {
  const cleanup = cleanupFor(t);
  const [a, b, c] = (await addHosts(cleanup, ['10.41.0.1/24', '10.41.0.2/24', '10.41.0.3/24'])) as [Host, Host, Host];
  const sw = await startDaemon(t, cleanup, { workers: 2, ports: [accessPort(a.port, 10), accessPort(b.port, 10)] }, { logLevel: 'warn' });
  const cycle = async () => {
    await sw.ctl('port.add', { name: c.port, vlan: 10 });
    await sw.ctl('port.del', { name: c.port });
  };
  // The first cycles may open what stays for the life of the process (libbpf's caches).
  for (let i = 0; i < 3; i++) await cycle();
  const before = await snapshot(sw);

  for (let i = 0; i < ADD_DEL_CYCLES; i++) await cycle();

  // The device of a port goes away and comes back (a VM restarted): the port follows it.
  await sw.ctl('port.add', { name: c.port, vlan: 10 });
  const upIs = (want: boolean) => async () => (await sw.ports()).find((p) => p.name === c.port)?.up === want;
  for (let i = 0; i < DEVICE_CYCLES; i++) {
    await run(['ip', 'link', 'del', c.port]);
    await eventually(`${c.port} down after its device went`, upIs(false));
    await run(['ip', 'link', 'add', c.port, 'type', 'veth', 'peer', 'name', c.dev, 'netns', c.ns]);
    await run(['ip', 'link', 'set', c.port, 'up']);
    await run(['ip', 'addr', 'add', `${c.ip}/24`, 'dev', c.dev], { ns: c.ns });
    await run(['ip', 'link', 'set', c.dev, 'up'], { ns: c.ns });
    await eventually(`${c.port} up again with its new device`, upIs(true));
  }
  t.true(await pingUntil(c, a.ip), 'the re-created port forwards');
  await sw.ctl('port.del', { name: c.port });

  // fds of short-lived work (control connections, ip/ethtool pipes) may still be closing.
  let after = await snapshot(sw);
  for (let i = 0; i < 20 && after.fds > before.fds; i++) {
    await sleep(250);
    after = await snapshot(sw);
  }
  t.log(`daemon fds ${before.fds} -> ${after.fds}; its loaded programs ${before.progs.length} -> ${after.progs.length}`);
  t.true(before.progs.length > 0, 'the programs of the two ports are counted');
  t.true(after.fds <= before.fds, `daemon fds flat: ${before.fds} before, ${after.fds} after`);
  t.deepEqual(after.progs, before.progs, 'the same programs loaded as before the churn');
  t.true(await pingUntil(a, b.ip), 'the ports that stayed still forward');
});
