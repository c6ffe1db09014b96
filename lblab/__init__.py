"""lblab: reproduce load-balancer failure modes on real software, and measure them."""

__version__ = "0.1.0"
