"""The pure domain: profiles, their rules, URL templating and credential injection.

Nothing here performs I/O or imports web, database or HTTP libraries; the
import-linter contracts in pyproject.toml keep it that way.
"""
