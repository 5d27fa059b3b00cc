import test from 'ava';
import { prettyLine } from '../../src/switch/operate/log.js';

test('a pino line becomes time, level, message and fields', (t) => {
  const line = prettyLine(JSON.stringify({ level: 40, time: Date.UTC(2026, 0, 2, 3, 4, 5, 678), name: 'vswitchd', msg: 'port down', port: 'tap1', vlan: { mode: 'access', vlan: 10 } }));
  t.is(line, '03:04:05.678 WARN  port down port=tap1 vlan={"mode":"access","vlan":10}\n');
});
