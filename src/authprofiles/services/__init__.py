"""Use cases: what the API, the CLI and the web UI ask the system to do."""
