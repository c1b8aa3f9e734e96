"""Users: who they are (registrations) and what they spent (sent by orders)."""
