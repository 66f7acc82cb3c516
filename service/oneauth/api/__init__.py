"""The first-party JSON API under ``/apps/{app_id}/v1``."""
