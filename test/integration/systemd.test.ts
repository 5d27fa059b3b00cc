// systemd's notify protocol: READY=1 once forwarding, RELOADING=1/READY=1 around a
// SIGHUP reload, STOPPING=1 on SIGTERM, sent to $NOTIFY_SOCKET as Type=notify expects.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { repoRoot } from '../helpers/frames.js';
import { sleep, uniqueName } from '../helpers/netns.js';

const LISTENER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    print(s.recv(4096).decode().replace("\\n", "|"), flush=True)
`;

test.serial('notifies systemd when ready, reloading and stopping', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vswitchd-notify-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const notifySocket = join(dir, 'notify.sock');
  const listener = spawn('python3', ['-c', LISTENER, notifySocket], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void listener.kill());
  let messages = '';
  listener.stdout.on('data', (d: Buffer) => (messages += d.toString()));
  const until = async (text: string) => {
    for (let i = 0; i < 200 && !messages.includes(text); i++) await sleep(100);
    return messages.includes(text);
  };
  t.true(await until('listening'));

  const configPath = join(dir, 'switch.yaml');
  writeFileSync(configPath, `bridge: ${uniqueName()}b\nworkers: 1\nmetrics: { listen: "off" }\ncontrol: { socket: ${join(dir, 'ctl.sock')} }\n`);
  const daemon = spawn(process.execPath, [join(repoRoot(), 'bin', 'vswitchd.js'), '--config', configPath], {
    env: { ...process.env, NOTIFY_SOCKET: notifySocket },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => daemon.on('close', resolve));
  t.teardown(() => void daemon.kill('SIGKILL'));

  t.true(await until('READY=1'), `READY=1 arrives (got: ${messages})`);
  t.regex(messages, /MAINPID=\d+/);
  daemon.kill('SIGHUP');
  t.true(await until('RELOADING=1'), 'RELOADING=1 on SIGHUP');
  t.true(await until('RELOADING=1\nREADY=1'), 'READY=1 again after the reload');
  daemon.kill('SIGTERM');
  t.true(await until('STOPPING=1'), 'STOPPING=1 on SIGTERM');
  t.is(await exited, 0);
});
