"""Traffic that must survive a restart, for test/integration/restart.test.ts.

  stream.py udp-send IP PORT RATE SECONDS   numbered datagrams at RATE/s; prints "sent N"
  stream.py udp-recv PORT SECONDS           prints "received N unique U max_gap_ms G"
  stream.py tcp-echo PORT                   echoes lines back
  stream.py tcp-ping IP PORT SECONDS        a message every 10 ms over one connection;
                                            prints "exchanged N max_stall_ms S error E"
"""
import socket
import sys
import time

mode = sys.argv[1]
if mode == 'udp-send':
    ip, port, rate, seconds = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start = time.monotonic()
    n = 0
    total = int(rate * seconds)
    while n < total:
        due = int((time.monotonic() - start) * rate) + 1
        while n < min(due, total):
            s.sendto(n.to_bytes(4, 'big') + b'x' * 60, (ip, port))
            n += 1
        time.sleep(0.0005)
    print('sent', n, flush=True)
elif mode == 'udp-recv':
    port, seconds = int(sys.argv[2]), float(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # Root may go past rmem_max: a receiver starved of CPU for a moment must not drop what the switch delivered.
    s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
    s.bind(('0.0.0.0', port))
    s.settimeout(0.2)
    seen = set()
    count = 0
    last = None
    gap = 0.0
    end = time.monotonic() + seconds
    print('listening', flush=True)
    while time.monotonic() < end:
        try:
            data = s.recv(2048)
        except socket.timeout:
            continue
        now = time.monotonic()
        if last is not None:
            gap = max(gap, now - last)
        last = now
        count += 1
        seen.add(int.from_bytes(data[:4], 'big'))
    print('received', count, 'unique', len(seen), 'max_gap_ms', round(gap * 1000, 1), flush=True)
elif mode == 'tcp-echo':
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(('0.0.0.0', int(sys.argv[2])))
    srv.listen(1)
    print('listening', flush=True)
    conn, _ = srv.accept()
    f = conn.makefile('rwb', buffering=0)
    for line in f:
        f.write(line)
elif mode == 'tcp-ping':
    ip, port, seconds = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    c = socket.create_connection((ip, port), timeout=5)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = c.makefile('rwb', buffering=0)
    n, stall, error = 0, 0.0, 'none'
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            t0 = time.monotonic()
            f.write(b'%d\n' % n)
            if f.readline() != b'%d\n' % n:
                error = 'bad-echo'
                break
            stall = max(stall, time.monotonic() - t0)
            n += 1
            time.sleep(max(0.0, 0.01 - (time.monotonic() - t0)))
    except OSError as e:
        error = type(e).__name__
    print('exchanged', n, 'max_stall_ms', round(stall * 1000, 1), 'error', error, flush=True)
