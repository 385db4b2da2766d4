"""Workflows: versioned graphs of typed nodes (inputs, agent tasks, conditions, transforms, outputs), run as
real orchestrator tasks, exported to Python, and built in the browser."""
