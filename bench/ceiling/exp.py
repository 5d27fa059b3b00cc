#!/usr/bin/env python3
# The ceiling of each hook on this machine: the bench's XDP live-frames generator (64-byte
# frames, pinned to CPU 0, as `npm run bench -- --gens xdp --placements default`) through a
# minimal "switch" on a two-veth topology of its own (namespaces tpg, tpk; ports tpgp, tpkp):
#   xdp           an XDP program on tpgp: bpf_redirect to tpkp (the XDP hook's floor)
#   peer          tc ingress on tpgp: bpf_redirect_peer into tpk0 (the tc hook's floor); GRO on
#                 tpgp for veth NAPI, as the bench does
#   redir         the same with bpf_redirect to tpkp
#   xdppass_peer  tc redirect_peer with an XDP pass program on tpgp instead of GRO (NAPI
#                 without GRO; changes tpg0's offloads, so not an option for vswitchd)
# The sink is the bench's (bench/build/vbsink in tpk). Run as root, under the bench lock:
#   flock /work/bench.lock bench/ceiling/exp.py xdp,peer,xdppass_peer,redir 5 [perf-prefix]
import subprocess, sys, time, os, json
def sh(*a, check=True, **kw):
    r = subprocess.run(list(a), capture_output=True, text=True, **kw)
    if check and r.returncode: raise SystemExit(f"{a}: {r.stderr}")
    return r.stdout
HERE = os.path.dirname(os.path.abspath(__file__))
B = os.path.join(HERE, '..', 'build')
WORK = '/tmp'
GMAC, KMAC = '02:74:70:00:00:01', '02:74:70:00:00:02'
def setup():
    cleanup()
    for ns in ('tpg', 'tpk'):
        sh('ip', 'netns', 'add', ns)
        sh('ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1')
    for p, d, ns, mac, ip in (('tpgp', 'tpg0', 'tpg', GMAC, '10.78.0.1'), ('tpkp', 'tpk0', 'tpk', KMAC, '10.78.0.2')):
        sh('ip', 'link', 'add', p, 'type', 'veth', 'peer', 'name', d, 'netns', ns)
        open(f'/proc/sys/net/ipv6/conf/{p}/disable_ipv6', 'w').write('1')
        sh('ip', '-n', ns, 'link', 'set', d, 'address', mac)
        sh('ip', '-n', ns, 'addr', 'add', ip + '/24', 'dev', d)
        sh('ip', '-n', ns, 'link', 'set', d, 'up')
        sh('ip', 'link', 'set', p, 'up')
def cleanup():
    for ns in ('tpg', 'tpk'):
        sh('ip', 'netns', 'del', ns, check=False)
    for l in ('tpgp', 'tpkp'):
        sh('ip', 'link', 'del', l, check=False)
def ifindex(d): return int(open(f'/sys/class/net/{d}/ifindex').read())
def frame():
    b = bytearray(60)
    b[0:6] = bytes.fromhex(KMAC.replace(':', '')); b[6:12] = bytes.fromhex(GMAC.replace(':', ''))
    b[12:14] = b'\x08\x00'
    ip = bytearray(20); ip[0] = 0x45; ip[2:4] = (46).to_bytes(2, 'big'); ip[8] = 64; ip[9] = 17
    ip[12:16] = bytes([10, 78, 0, 1]); ip[16:20] = bytes([10, 78, 0, 2])
    s = sum(int.from_bytes(ip[i:i+2], 'big') for i in range(0, 20, 2)); s = (s & 0xffff) + (s >> 16); s = (s & 0xffff) + (s >> 16)
    ip[10:12] = (~s & 0xffff).to_bytes(2, 'big')
    b[14:34] = ip
    udp = bytearray(8); udp[0:2] = (9).to_bytes(2, 'big'); udp[2:4] = (47474).to_bytes(2, 'big'); udp[4:6] = (26).to_bytes(2, 'big')
    b[34:42] = udp
    return b.hex()
def run(mode, seconds=5, perf=None):
    setup()
    out = ifindex('tpkp')
    def build(o, *d):
        sh('clang', '-O2', '-g', '-target', 'bpf', '-I/usr/include/x86_64-linux-gnu', f'-DOUT_IFINDEX={out}', *d, '-c', os.path.join(HERE, 'min.bpf.c'), '-o', os.path.join(WORK, o))
    if mode in ('peer', 'redir', 'xdppass_peer', 'xdppass_peer_gro'):
        build('tc.o', '-DPEER' if 'peer' in mode else '-DREDIR')
        if mode in ('peer', 'redir', 'xdppass_peer_gro'): sh('ethtool', '-K', 'tpgp', 'gro', 'on')
        if 'xdppass' in mode:
            build('pass.o', '-DPASS')
            sh('ip', 'link', 'set', 'dev', 'tpgp', 'xdpdrv', 'obj', os.path.join(WORK, 'pass.o'), 'sec', 'xdp')
        sh('tc', 'qdisc', 'add', 'dev', 'tpgp', 'clsact')
        sh('tc', 'filter', 'add', 'dev', 'tpgp', 'ingress', 'bpf', 'da', 'obj', os.path.join(WORK, 'tc.o'), 'sec', 'tc')
    elif mode == 'xdp':
        build('x.o')
        sh('ip', 'link', 'set', 'dev', 'tpgp', 'xdpdrv', 'obj', os.path.join(WORK, 'x.o'), 'sec', 'xdp')
    sink = subprocess.Popen(['ip', 'netns', 'exec', 'tpk', f'{B}/vbsink', '--dev', 'tpk0', '--obj', f'{B}/vb_sink.bpf.o'], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    sink.stdout.readline()
    def count():
        sink.stdin.write('q\n'); sink.stdin.flush(); p, b, t = sink.stdout.readline().split(); return int(p), int(t)
    gen = subprocess.Popen(['ip', 'netns', 'exec', 'tpg', 'taskset', '-c', '0', f'{B}/vbxdpgen', '--dev', 'tpg0', '--obj', f'{B}/vb_gen.bpf.o', '--frame', frame(), '--seconds', str(seconds + 3)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    gen.stdout.readline()
    time.sleep(1)
    def stat():
        return [list(map(int, l.split()[1:])) for l in open('/proc/stat') if l.startswith('cpu') and l[3] != ' ']
    p0, t0 = count(); s0 = stat()
    pp = None
    if perf: pp = subprocess.Popen(['perf', 'record', '-a', '-g', '-o', perf, '--', 'sleep', str(min(3, seconds))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    p1, t1 = count(); s1 = stat()
    if pp: pp.wait()
    busy = [sum(b) - sum(a) - (b[3] - a[3]) - (b[4] - a[4]) for a, b in zip(s0, s1)]
    tot = [sum(b) - sum(a) for a, b in zip(s0, s1)]
    gen.terminate(); gen.wait(); sink.stdin.close(); sink.wait()
    mpps = (p1 - p0) / ((t1 - t0) / 1e9) / 1e6
    print(json.dumps({'mode': mode, 'mpps': round(mpps, 3), 'cpu_busy_pct': [round(100 * b / t, 1) for b, t in zip(busy, tot)], 'load': os.getloadavg()[0]}))
    cleanup()
if __name__ == '__main__':
    for m in sys.argv[1].split(','):
        run(m, int(sys.argv[2]) if len(sys.argv) > 2 else 5, perf=(sys.argv[3] + '.' + m) if len(sys.argv) > 3 else None)
