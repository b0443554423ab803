"""The tutorial's select() echo server, ported to Python 3.

Kept as the tutorial wrote it: one select() over every socket, a queue of
received chunks per connection, recv(1024), listen(5), no limit on a
queue. Fixed only where it loses data: a partial send puts the rest back at
the head of the queue, and a connection whose client has finished sending
is closed only after its queue is empty (the tutorial closed it at once).
select() cannot watch descriptors beyond FD_SETSIZE (1024): with more
connections it fails, which is the tutorial's limit too.

usage: python3 tutorial_select.py [PORT]
"""
import collections
import select
import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.setblocking(0)
server.bind(("127.0.0.1", port))
server.listen(5)
print(f"listening on 127.0.0.1:{server.getsockname()[1]}", flush=True)

inputs = [server]
outputs = []
message_queues = {}
finished = set()  # clients that sent FIN: close once their queue is empty


def close(s):
    for lst in (inputs, outputs):
        if s in lst:
            lst.remove(s)
    finished.discard(s)
    message_queues.pop(s, None)
    s.close()


while inputs:
    readable, writable, exceptional = select.select(inputs, outputs, inputs)
    for s in readable:
        if s is server:
            connection, client_address = s.accept()
            connection.setblocking(0)
            inputs.append(connection)
            message_queues[connection] = collections.deque()
            continue
        try:
            data = s.recv(1024)
        except (ConnectionResetError, BlockingIOError):
            data = None
        if data:
            message_queues[s].append(data)
            if s not in outputs:
                outputs.append(s)
        elif data is None or not message_queues[s]:
            close(s)
        else:
            inputs.remove(s)
            finished.add(s)
    for s in writable:
        if s not in message_queues:
            continue
        queue = message_queues[s]
        if not queue:
            outputs.remove(s)
            continue
        next_msg = queue.popleft()
        try:
            sent = s.send(next_msg)
        except BlockingIOError:
            sent = 0
        except (BrokenPipeError, ConnectionResetError):
            close(s)
            continue
        if sent < len(next_msg):
            queue.appendleft(next_msg[sent:])
        if not queue and s in finished:
            close(s)
    for s in exceptional:
        if s in message_queues:
            close(s)
