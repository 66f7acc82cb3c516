"""Sessions and refresh-token families (S1-S3)."""
