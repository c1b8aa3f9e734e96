"""Agent RPC: ask/map/join over topics, with replies routed back to the asking worker."""
