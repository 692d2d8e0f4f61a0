"""Meta-OoD as a library: the three scripts at the repository root are thin drivers of it."""
