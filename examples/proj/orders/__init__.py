"""Orders: counted per user; what they cost is passed on to the users part."""
