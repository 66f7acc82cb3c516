"""The one version of oneauth and oneauth-verifier (both wheels read it: hatch's version source)."""

__version__ = "0.1.0"
