#!/usr/bin/env python3
# Stands in for PID 1's file descriptor store for a service run by the lab
# (node cannot pass file descriptors over a Unix socket). networkd 257 and later
# push their serialized state into it when they stop (sd_notify FDSTORE=1) and
# read it back when they start (LISTEN_FDS), so that a restarted networkd knows
# what its predecessor configured.
#
#   fdstore.py serve DIR          keeps DIR/notify (the service's NOTIFY_SOCKET)
#                                 and DIR/fds (hands the stored fds out), until killed
#   fdstore.py exec DIR ARGV...   execs ARGV with the stored fds as fd 3, 4, ...,
#                                 LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID set (as PID 1
#                                 does), and NOTIFY_SOCKET=DIR/notify
#
# Only what networkd uses: FDSTORE=1 (with FDNAME=), FDSTOREREMOVE=1; the store is
# emptied when handed out, as PID 1 passes the fds to the next start.
import array
import os
import socket
import sys


def fds_of(ancdata):
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return list(fds)


def serve(directory):
    for name in ("notify", "fds"):  # an earlier store's sockets (after a simulated reboot)
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(os.path.join(directory, "notify"))
    os.chmod(os.path.join(directory, "notify"), 0o777)  # networkd sends as systemd-network
    handout = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    handout.bind(os.path.join(directory, "fds"))
    handout.listen(4)
    stored = []  # (name, fd)
    print("ready", flush=True)
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(notify, selectors.EVENT_READ)
    sel.register(handout, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is notify:
                msg, ancdata, _, _ = notify.recvmsg(65536, socket.CMSG_SPACE(253 * 4))
                fields = dict(line.split("=", 1) for line in msg.decode(errors="replace").splitlines() if "=" in line)
                fds = fds_of(ancdata)
                name = fields.get("FDNAME", "stored")
                if fields.get("FDSTOREREMOVE") == "1":
                    for n, fd in [s for s in stored if s[0] == name]:
                        os.close(fd)
                    stored = [s for s in stored if s[0] != name]
                if fields.get("FDSTORE") == "1":
                    stored += [(name, fd) for fd in fds]
                    print(f"stored {len(fds)} fd(s) named {name}", flush=True)
                else:
                    for fd in fds:
                        os.close(fd)
            else:
                conn, _ = handout.accept()
                names = ":".join(n for n, _ in stored).encode()
                fds = array.array("i", [fd for _, fd in stored])
                conn.sendmsg([names or b"-"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)] if stored else [])
                conn.close()
                print(f"handed out {len(stored)} fd(s)", flush=True)
                for _, fd in stored:
                    os.close(fd)
                stored = []


def execute(directory, argv):
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(os.path.join(directory, "fds"))
    msg, ancdata, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(253 * 4))
    conn.close()
    fds = fds_of(ancdata)
    names = [] if msg == b"-" else msg.decode().split(":")
    env = dict(os.environ)
    env["NOTIFY_SOCKET"] = os.path.join(directory, "notify")
    for key in ("LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID"):
        env.pop(key, None)
    if fds:
        # Move them out of the way first, then to 3, 4, ... (the first fd a service gets).
        high = []
        for i, fd in enumerate(fds):
            os.dup2(fd, 200 + i)
            os.close(fd)
            high.append(200 + i)
        for i, fd in enumerate(high):
            os.dup2(fd, 3 + i, inheritable=True)
            os.close(fd)
        env["LISTEN_FDS"] = str(len(fds))
        env["LISTEN_FDNAMES"] = ":".join(names)
        env["LISTEN_PID"] = str(os.getpid())  # exec keeps the pid
    os.execvpe(argv[0], argv, env)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "exec":
        execute(sys.argv[2], sys.argv[3:])
    else:
        sys.exit("usage: fdstore.py serve DIR | fdstore.py exec DIR ARGV...")
