"""Background retention of every app's dead rows (README "Retention", R1-R4)."""
