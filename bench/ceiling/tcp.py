#!/usr/bin/env python3
# The TCP ceiling: iperf3, one flow, between two namespaces with default offloads:
#   direct  one veth pair between the two namespaces (no switch at all)
#   mintc   two veth pairs, a one-instruction tc program on each switch side: bpf_redirect_peer
#   bridge  two veth pairs on a Linux bridge
# Run as root, under the bench lock: flock /work/bench.lock bench/ceiling/tcp.py direct,mintc,bridge 5 3
import subprocess, sys, time, os, json
from exp import sh, cleanup, setup, HERE
def iperf(seconds, flows=1):
    srv = subprocess.Popen(['ip', 'netns', 'exec', 'tpk', 'iperf3', '-s', '-1', '-B', '10.78.0.2'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    out = sh('ip', 'netns', 'exec', 'tpg', 'iperf3', '-c', '10.78.0.2', '-t', str(seconds), '-P', str(flows), '-J')
    srv.wait()
    j = json.loads(out)
    return round(j['end']['sum_received']['bits_per_second'] / 1e9, 2)
def stat():
    return [list(map(int, l.split()[1:])) for l in open('/proc/stat') if l.startswith('cpu') and l[3] != ' ']
def run(mode, seconds, runs):
    if mode == 'direct':
        cleanup()
        for ns in ('tpg', 'tpk'): sh('ip', 'netns', 'add', ns)
        sh('ip', '-n', 'tpg', 'link', 'add', 'tpg0', 'type', 'veth', 'peer', 'name', 'tpk0', 'netns', 'tpk')
        sh('ip', '-n', 'tpg', 'addr', 'add', '10.78.0.1/24', 'dev', 'tpg0'); sh('ip', '-n', 'tpg', 'link', 'set', 'tpg0', 'up')
        sh('ip', '-n', 'tpk', 'addr', 'add', '10.78.0.2/24', 'dev', 'tpk0'); sh('ip', '-n', 'tpk', 'link', 'set', 'tpk0', 'up')
        for ns in ('tpg', 'tpk'): sh('ip', '-n', ns, 'link', 'set', 'lo', 'up')
    else:
        setup()
        for ns in ('tpg', 'tpk'): sh('ip', '-n', ns, 'link', 'set', 'lo', 'up')
        if mode == 'mintc':
            for p, o in (('tpgp', 'tpkp'), ('tpkp', 'tpgp')):
                idx = int(open(f'/sys/class/net/{o}/ifindex').read())
                sh('clang', '-O2', '-target', 'bpf', '-I/usr/include/x86_64-linux-gnu', f'-DOUT_IFINDEX={idx}', '-DPEER', '-c', os.path.join(HERE, 'min.bpf.c'), '-o', f'/tmp/min_{p}.o')
                sh('tc', 'qdisc', 'add', 'dev', p, 'clsact')
                sh('tc', 'filter', 'add', 'dev', p, 'ingress', 'bpf', 'da', 'obj', f'/tmp/min_{p}.o', 'sec', 'tc')
        elif mode == 'bridge':
            sh('ip', 'link', 'add', 'tpbr', 'type', 'bridge', 'stp_state', '0')
            for p in ('tpgp', 'tpkp'): sh('ip', 'link', 'set', p, 'master', 'tpbr')
            sh('ip', 'link', 'set', 'tpbr', 'up')
    for i in range(20):
        if subprocess.run(['ip', 'netns', 'exec', 'tpg', 'ping', '-c1', '-W1', '10.78.0.2'], capture_output=True).returncode == 0: break
    rates = []
    s0 = stat()
    for i in range(runs): rates.append(iperf(seconds))
    s1 = stat()
    busy = sum(sum(b) - sum(a) - (b[3] - a[3]) - (b[4] - a[4]) for a, b in zip(s0, s1))  # ticks (10 ms)
    gbit = sum(rates) * seconds
    print(json.dumps({'mode': mode, 'gbps': sorted(rates)[len(rates)//2], 'runs': rates, 'cpu_ms_per_gbit': round(busy * 10 / gbit, 1), 'load': os.getloadavg()[0]}), flush=True)
    sh('ip', 'link', 'del', 'tpbr', check=False)
    cleanup()
if __name__ == '__main__':
    for m in sys.argv[1].split(','):
        run(m, int(sys.argv[2]), int(sys.argv[3]))
