"""End-user identity: password policy and hashing (``oneauth.identity.passwords``)."""
