"""Prints TCP_NODELAY (0 or 1) of one TCP connection held by another process.

usage: sockopt.py PID LOCAL_PORT PEER_PORT

The connection is the socket of PID whose own port is LOCAL_PORT and whose peer's port is
PEER_PORT. pidfd_getfd(2) copies that descriptor into this process, so the option read is the
one on the other process's socket itself, not a guess from outside. Needs Linux 5.6 and the
right to ptrace PID (root, or the same user with ptrace allowed). Exits 3 when no such
connection is open.
"""

import ctypes
import os
import socket
import sys

SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture


def main():
    pid, local_port, peer_port = (int(arg) for arg in sys.argv[1:4])
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                continue
        except OSError:
            continue
        fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
        if fd < 0:
            err = ctypes.get_errno()
            sys.exit(f"pidfd_getfd({pid}, {name}): {os.strerror(err)}")
        sock = socket.socket(fileno=fd)
        try:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            if sock.type != socket.SOCK_STREAM:
                continue
            try:
                peer = sock.getpeername()
            except OSError:
                continue  # a listener
            if sock.getsockname()[1] == local_port and peer[1] == peer_port:
                print(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                return
        finally:
            sock.close()  # closes this copy only; the other process keeps its socket
    sys.exit(3)


main()
