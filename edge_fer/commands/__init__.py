"""One module per CLI command; each imports only click at import time.

edge_fer/cli.py maps command names to these modules and imports them lazily.
"""
