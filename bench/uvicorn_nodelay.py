"""uvicorn's command line, with the listening socket ``--workers`` binds up front made to say it is TCP.

uvicorn creates that socket with ``proto`` left at 0; accepted connections inherit it and asyncio sets TCP_NODELAY
only on sockets that say IPPROTO_TCP, so with several workers every keep-alive request past the first waits ~40 ms
for the client's delayed ACK (uvicorn issue 3149, open): every app alike, which would make the benchmark measure
that wait. Wrapping the same descriptor anew lets Python read the protocol back from the kernel. bench_load.py's
several-worker runs start uvicorn through this; nothing else changes.
"""

from __future__ import annotations

import socket

import uvicorn.config
from uvicorn.main import main

_bind_socket = uvicorn.config.Config.bind_socket


def bind_tcp_socket(config: uvicorn.config.Config) -> socket.socket:
    bound = _bind_socket(config)
    if bound.family not in (socket.AF_INET, socket.AF_INET6):
        return bound
    return socket.socket(fileno=bound.detach())


uvicorn.config.Config.bind_socket = bind_tcp_socket  # type: ignore[method-assign,assignment]

if __name__ == "__main__":
    main()
