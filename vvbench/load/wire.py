"""A plain TCP connection whose every received piece is stamped with when it arrived.

Why not `http.client`: its buffered reader hides which `recv` delivered a byte, so a timestamp
can only be taken when user code gets to the bytes. Here each `recv` is one piece with one
time, and the answer is parsed from those pieces (`vvbench.load.http1`), so every body byte
knows the piece it came in.

The clock: with `SO_TIMESTAMPNS` (Linux), `recvmsg` returns the time the kernel received the
data (`clock = "kernel"`); elsewhere, or when the option is refused, or for data that arrived
before it was set, the piece is timed when it was read (`"read"`). The request's send is
stamped the same way (`SO_TIMESTAMPING`, the driver's transmit time of its last byte:
`Connection.sent_at`), so a row on the kernel clock does not depend on when its thread got to
run either side of the send. Measured on Linux 6.18 over loopback (see docs/benchmarking.md, "The clock"): segments queued unread in a TCP socket are
merged and carry the stamp of the *latest* one, however few bytes a `recvmsg` asks for. So a
kernel stamp is the true arrival of the last byte a read returns, and of every byte in it only
if nothing else arrived before the read: the reader must read promptly. `vvbench.load.users`
therefore runs each request on a thread of its own (off the event loop), where a read is late
only by the time it waits for the GIL.

The socket is `_socket.socket`, the C type that gevent never patches: it blocks the calling
thread only, which is what a request thread wants (and what a plain test wants). The caller
owns a deadline; every wait is bounded by it (`RequestTimeout`), by the kernel's socket timeouts
rather than Python's (see `Connection.settimeout`).
"""

from __future__ import annotations

import _socket
import platform
import struct
import sys
import time

READ_BYTES = 64 * 1024
KERNEL, READ = "kernel", "read"
_TIMESPEC = struct.Struct("@ll")  # the kernel's struct timespec of SO_TIMESTAMPNS (its "old" form: two longs)


def _so_timestampns() -> int | None:
    """Linux's SO_TIMESTAMPNS (Python does not export it): 35 on the generic ABI, None elsewhere."""
    if not sys.platform.startswith("linux") or not hasattr(_socket.socket, "recvmsg"):
        return None
    machine = platform.machine().lower()
    if machine.startswith(("alpha", "parisc", "hppa", "sparc", "mips")):
        return None  # these define their own socket option numbers; read times there
    return getattr(_socket, "SO_TIMESTAMPNS", 35)


SO_TIMESTAMPNS = _so_timestampns()
SO_TIMESTAMPING = 37 if SO_TIMESTAMPNS is not None else None  # the same ABI test: Linux generic
# transmit stamps from the driver, reported in software, keyed by byte offset, without the packet
_TX_FLAGS = (1 << 1) | (1 << 4) | (1 << 7) | (1 << 11)  # TX_SOFTWARE | SOFTWARE | OPT_ID | OPT_TSONLY
_EXTENDED_ERR = struct.Struct("=IBBBBII")  # struct sock_extended_err: errno, origin, type, code, pad, info, data
_ORIGIN_TIMESTAMPING = 4
_ANCILLARY = _socket.CMSG_SPACE(_TIMESPEC.size) if SO_TIMESTAMPNS is not None else 0


class RequestTimeout(Exception):
    """The request's own deadline passed."""


def _stamp(ancillary) -> float | None:
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack(data[:_TIMESPEC.size])
            return sec + nsec / 1e9
    return None


class Connection:
    """One keep-alive TCP connection; `recv()` gives (bytes, arrival epoch s, clock of that time)."""

    def __init__(self, host: str, port: int, connect_timeout_s: float, kernel_stamps: bool = True):
        err: OSError | None = None
        for family, kind, proto, _, addr in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
            sock = _socket.socket(family, kind, proto)
            try:
                sock.settimeout(connect_timeout_s)
                sock.connect(addr)
            except OSError as exc:
                sock.close()
                err = exc
                continue
            self.sock = sock
            break
        else:
            raise err or OSError(f"cannot resolve {host}:{port}")
        self.sock.settimeout(None)  # blocking; each wait is bounded by the kernel (`settimeout`)
        self.sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        self.stamping = self.tx_stamping = False
        if kernel_stamps and SO_TIMESTAMPNS is not None:
            try:
                self.sock.setsockopt(_socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                self.stamping = True
                self.sock.setsockopt(_socket.SOL_SOCKET, SO_TIMESTAMPING, _TX_FLAGS)
                self.tx_stamping = True
            except OSError:
                pass
        self.sent_bytes = 0
        self._tx_key: int | None = None  # byte offset whose transmit stamp is awaited
        self.sent_at: float | None = None  # the kernel's transmit stamp of the last request's last byte
        self.closed = False

    def settimeout(self, deadline: float) -> None:
        """Bound the next send or read by `deadline` (perf_counter s); RequestTimeout when it has passed.

        The socket stays in blocking mode, bounded by the kernel (SO_RCVTIMEO/SO_SNDTIMEO): with a
        Python timeout, every read would first poll the socket, and a pending transmit stamp in
        its error queue makes a poll return at once, so a read would spin a CPU until data came
        (measured: 10-30 times the CPU per request at 100-500 streams, and a starved event loop).
        """
        left = deadline - time.perf_counter()
        if left <= 0:
            raise RequestTimeout()
        whole = int(left)
        tv = _TIMESPEC.pack(whole, max(1, int((left - whole) * 1e6)))  # struct timeval: seconds, microseconds
        self.sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVTIMEO, tv)
        self.sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDTIMEO, tv)

    def send(self, data: bytes, deadline: float) -> None:
        """Send a request; with transmit stamps, `sent_at` becomes the kernel's time its last byte left."""
        self.settimeout(deadline)
        self.sent_at = None
        try:
            self.sock.sendall(data)
        except (TimeoutError, BlockingIOError):
            raise RequestTimeout() from None
        self.sent_bytes += len(data)
        if self.tx_stamping:
            self._tx_key = self.sent_bytes - 1
            self._collect_tx()

    def _collect_tx(self) -> None:
        """Take transmit stamps from the error queue without blocking (after the send, and before each
        read until the request's stamp has come)."""
        while True:
            try:
                _, ancillary, _, _ = self.sock.recvmsg(1, 512, _socket.MSG_ERRQUEUE | _socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.tx_stamping = False
                return
            stamp = key = None
            for level, kind, raw in ancillary:
                if level == _socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(raw) >= _TIMESPEC.size:
                    sec, nsec = _TIMESPEC.unpack(raw[:_TIMESPEC.size])
                    stamp = sec + nsec / 1e9
                elif len(raw) >= _EXTENDED_ERR.size:
                    err = _EXTENDED_ERR.unpack(raw[:_EXTENDED_ERR.size])
                    if err[1] == _ORIGIN_TIMESTAMPING:
                        key = err[6]
            if stamp and key is not None and key == (self._tx_key or 0) % 2**32:
                self.sent_at, self._tx_key = stamp, None

    def recv(self, deadline: float) -> tuple[bytes, float, str]:
        """The next piece (b"" at EOF), when it arrived (epoch s) and by which clock."""
        if self._tx_key is not None:
            self._collect_tx()
        self.settimeout(deadline)
        try:
            if self.stamping:
                data, ancillary, _, _ = self.sock.recvmsg(READ_BYTES, _ANCILLARY)
                stamp = _stamp(ancillary)
                if stamp is not None:
                    return data, stamp, KERNEL
            else:
                data = self.sock.recv(READ_BYTES)
        except (TimeoutError, BlockingIOError):  # SO_RCVTIMEO expired: EAGAIN on a blocking socket
            raise RequestTimeout() from None
        return data, time.time(), READ

    def abort(self) -> None:
        """Make a read blocked in another thread return at once (the run is stopping)."""
        try:
            self.sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()
