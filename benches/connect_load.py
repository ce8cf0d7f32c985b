"""A bounded connection load on loopback for benches/trace.sh: a listener
that accepts and closes, and a client that opens and at once closes RATE
connections a second for SECONDS, paced in 10 ms steps. Prints
"listening PORT", waits for a line on stdin, runs, then prints
"done CONNECTS SECONDS CLIENT_PID"."""
import os, socket, sys, threading, time

rate, seconds = int(sys.argv[1]), float(sys.argv[2])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(4096)
port = server.getsockname()[1]


def serve():
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        conn.close()


threading.Thread(target=serve, daemon=True).start()
print("listening", port, flush=True)
sys.stdin.readline()
made, start = 0, time.monotonic()
step = 0.01
while True:
    now = time.monotonic() - start
    if now >= seconds:
        break
    due = min(int((now + step) * rate), int(seconds * rate))
    while made < due:
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.connect(("127.0.0.1", port))
        c.close()
        made += 1
    time.sleep(max(0.0, step - ((time.monotonic() - start) - now)))
print("done", made, round(time.monotonic() - start, 3), os.getpid(), flush=True)
