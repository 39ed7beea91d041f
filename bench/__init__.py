"""The benchmark (`make bench`): prints one JSON object of figures."""
