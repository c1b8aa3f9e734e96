"""The engine's runtime: fetch and delivery (conductor), acks, commits, the producer buffer, transactions."""
