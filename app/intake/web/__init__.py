"""The resident site and the API: parse, call app/intake's domain functions, render (no SQL here)."""
