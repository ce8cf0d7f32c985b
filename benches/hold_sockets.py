"""Holds N sockets on loopback for benches/sockets.sh: about 80% TCP
(established pairs behind a few listeners), 20% UDP (bound, half of them
connected). Prints "ready HELD_PORT" once all are open, then sleeps until
killed or until its time limit runs out."""
import socket, sys, time

n = int(sys.argv[1])
limit = float(sys.argv[2]) if len(sys.argv) > 2 else 600
held = []
listeners = []
for _ in range(4):
    l = socket.socket()
    l.bind(("127.0.0.1", 0))
    l.listen(4096)
    listeners.append(l)
    held.append(l)
tcp_pairs = int(n * 0.8) // 2
for i in range(tcp_pairs):
    l = listeners[i % len(listeners)]
    c = socket.create_connection(l.getsockname())
    s, _ = l.accept()
    held += [c, s]
udp = n - len(held)
for i in range(max(udp, 0)):
    u = socket.socket(socket.AF_INET if i % 2 else socket.AF_INET6, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1" if i % 2 else "::1", 0))
    if i % 4 == 1:
        u.connect(("127.0.0.1", 9))
    held.append(u)
print("ready", listeners[0].getsockname()[1], flush=True)
time.sleep(limit)
