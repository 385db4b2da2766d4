"""Agent Lightning: route tasks to specialised AI agents with a policy that learns from outcomes."""

__version__ = "0.1.0"
