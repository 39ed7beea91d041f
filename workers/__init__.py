"""dramatiq actors: one thin wrapper per pipeline stage."""
