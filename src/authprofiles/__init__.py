"""authprofiles: OAuth 2.0 Authorization Profiles for AI agents and automations."""

__version__ = "0.1.0"
