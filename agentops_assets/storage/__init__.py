"""The storage layer: paths and URIs, Delta tables and their locks, SQL over them."""
