"""Email for every app: templates, the transactional outbox and its delivery worker.

Messages are written to the app's ``outbox`` table in the same transaction as
the token they carry (``outbox``); the delivery worker (``worker``) renders them
(``render``) and hands them to a backend (``backends``: smtp, console, memory).
"""
