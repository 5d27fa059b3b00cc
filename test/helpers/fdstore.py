"""A stand-in for systemd's service manager, for tests (systemd is not PID 1 here).

It does for one service what systemd 252 does with Type=notify,
FileDescriptorStoreMax= and RestartKillSignal=SIGUSR2:
  - listens on $NOTIFY_SOCKET; keeps fds sent with FDSTORE=1 (FDNAME=...),
    forgets them on FDSTOREREMOVE=1; the same open file is kept once (kcmp);
  - starts the service with the store as LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID,
    the fds at 3, 4, ...;
  - commands on stdin: "env KEY=VALUE" (for the next start), "restart" (SIGUSR2, wait, start), "kill" (SIGKILL, then
    start: a crash and Restart=on-failure), "stop" (SIGTERM, wait, close the store).
Events on stdout, one per line: "started PID", "ready", "exited CODE",
"store NAME,NAME,...", "stopped"; started, ready and exited end with "at=MS" (epoch ms,
for the restart test's timeline).

usage: fdstore.py NOTIFY_SOCKET LOGFILE -- COMMAND...
"""
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time

libc = ctypes.CDLL(None, use_errno=True)
SYS_KCMP, KCMP_FILE = 312, 0
MAX_FDS = 512

notify_path, log_path = sys.argv[1], sys.argv[2]
command = sys.argv[sys.argv.index('--') + 1:]
store = []  # [(name, fd)]
lock = threading.Lock()
proc = None


def say(*words):
    print(*words, flush=True)


def at():
    return 'at=%d' % (time.time() * 1000)


def same_file(a, b):
    return libc.syscall(SYS_KCMP, os.getpid(), os.getpid(), KCMP_FILE, a, b) == 0


def listen():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(notify_path)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    while True:
        data, anc, _flags, _addr = s.recvmsg(4096, socket.CMSG_SPACE(4 * 64))
        fds = []
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += list(memoryview(payload).cast('i')[: len(payload) // 4])
        fields = dict(line.split('=', 1) for line in data.decode().split('\n') if '=' in line)
        with lock:
            if fields.get('FDSTORE') == '1':
                name = fields.get('FDNAME', 'stored')
                for fd in fds:
                    if len(store) >= MAX_FDS or any(same_file(fd, kept) for _, kept in store):
                        os.close(fd)
                    else:
                        store.append((name, fd))
                fds = []
            elif fields.get('FDSTOREREMOVE') == '1':
                name = fields.get('FDNAME')
                for n, fd in [e for e in store if e[0] == name]:
                    os.close(fd)
                store[:] = [e for e in store if e[0] != name]
            for fd in fds:
                os.close(fd)
            if fields.get('READY') == '1':
                say('ready', at())


def start():
    global proc
    with lock:
        names = [n for n, _ in store]
        fds = [fd for _, fd in store]

    def child():
        high = [os.dup(fd) for fd in fds]
        high = [fcntl_dup_above(h, 3 + len(fds)) for h in high]
        for i, h in enumerate(high):
            os.dup2(h, 3 + i, inheritable=True)
        os.environ['LISTEN_PID'] = str(os.getpid())
        os.environ['LISTEN_FDS'] = str(len(fds))
        os.environ['LISTEN_FDNAMES'] = ':'.join(names)

    log = open(log_path, 'ab')
    os.environ['NOTIFY_SOCKET'] = notify_path
    # systemd starts a service with the unit's environment, not the caller's: a test
    # runner's NODE_EXTRA_CA_CERTS makes Node read and parse that CA bundle at every
    # start (40-50 ms of the 60-80 ms Node takes to boot here), which no real restart pays.
    os.environ.pop('NODE_EXTRA_CA_CERTS', None)
    proc = subprocess.Popen(command, stdout=log, stderr=log, preexec_fn=child, close_fds=False)
    log.close()
    say('started', proc.pid, at())


def fcntl_dup_above(fd, minimum):
    import fcntl
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, minimum)
    os.close(fd)
    return new


def wait_exit():
    code = proc.wait()
    say('exited', code, at())


for fd in range(3, 1024):  # nothing of ours may leak into the service
    try:
        os.set_inheritable(fd, False)
    except OSError:
        pass
threading.Thread(target=listen, daemon=True).start()
start()
for line in sys.stdin:
    cmd = line.strip()
    if cmd == 'restart':
        proc.send_signal(signal.SIGUSR2)
        wait_exit()
        start()
    elif cmd == 'kill':
        proc.send_signal(signal.SIGKILL)
        wait_exit()
        start()
    elif cmd == 'stop':
        proc.send_signal(signal.SIGTERM)
        wait_exit()
        with lock:
            for _, fd in store:
                os.close(fd)
            store.clear()
        say('stopped')
    elif cmd.startswith('env '):  # for the next start (a new build)
        key, _, value = cmd[4:].partition('=')
        os.environ[key] = value
    elif cmd == 'store':
        with lock:
            say('store', ','.join(n for n, _ in store))
    elif cmd == 'quit':
        break
if proc and proc.poll() is None:
    proc.kill()
