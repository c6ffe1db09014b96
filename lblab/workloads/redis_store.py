"""A Redis server inside a lab host: the external session store for backends."""

from __future__ import annotations

from typing import Any

REDIS_PORT = 6379


def start_redis(lab: Any, node: str, ip: str, port: int = REDIS_PORT) -> str:
    """Start redis-server bound to the node's lab address, no persistence; return its URL."""
    proc = lab.spawn(node, ["redis-server", "--bind", ip, "--port", str(port), "--save", "",
                            "--appendonly", "no", "--protected-mode", "no",
                            "--dir", str(lab.file(""))], name=f"redis-{node}")
    lab.wait_listening(node, port, proc=proc)
    return f"redis://{ip}:{port}/0"
