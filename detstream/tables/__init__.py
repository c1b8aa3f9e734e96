"""Tables: Table and its kinds (global, set, windowed), their changelogs, recovery and standbys."""
