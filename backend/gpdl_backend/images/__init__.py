"""PXF-style image loading: fragmenter (list + split), accessor (read bytes),
resolver (decode), loader (the set-returning function's body)."""
