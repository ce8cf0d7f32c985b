"""A known load for benches/traffic.sh: sends RATE bytes a second for
SECONDS over one loopback connection to a receiver in this process that
reads everything, paced in 10 ms steps. Prints "sending PORT PID" at the
start and "sent BYTES SECONDS" at the end; stops by itself."""
import socket, sys, time, threading, os
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
port = l.getsockname()[1]
def recv():
    s, _ = l.accept()
    while s.recv(1 << 16): pass
threading.Thread(target=recv, daemon=True).start()
c = socket.create_connection(("127.0.0.1", port))
print("sending", port, os.getpid(), flush=True)
chunk = b"x" * (rate // 100)
start = time.monotonic(); sent = 0
while time.monotonic() - start < seconds:
    c.sendall(chunk); sent += len(chunk)
    time.sleep(max(0, start + sent / rate - time.monotonic()))
print("sent", sent, round(time.monotonic() - start, 3), flush=True)
