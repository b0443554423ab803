"""An echo server on Python's asyncio: a Protocol whose transport pauses
reading while its write buffer is over the high-water mark, and closes
(after flushing) on the client's FIN.

usage: python3 asyncio_echo.py [PORT]
"""
import asyncio
import signal
import socket
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.transport.write(data)

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()

    def eof_received(self):
        return False  # the transport closes once its buffer is written


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", port,
                                      backlog=socket.SOMAXCONN)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}",
          flush=True)
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set_result, None)
    async with server:
        await stop


asyncio.run(main())
