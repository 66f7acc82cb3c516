"""The tamper-evident audit log: hash chain, sealer, signed checkpoints (A2).

``chain`` (canonical content, hashing, verification), ``checkpoints`` (JWS
checkpoints), ``sealer`` (the background worker), ``verify`` (verification
and export drivers), ``repo`` (SQL).
"""
