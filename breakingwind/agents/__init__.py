"""The agents: one module each, holding its prompt loading, output shape and model call."""
