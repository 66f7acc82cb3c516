-- Pre-hijacking (SECURITY.md P7). A verification token issued by a signup
-- remembers the password that signup set (SHA-256 of its hash, like a reset's
-- password_fingerprint) and the session it started. The first proof of the
-- mailbox clears a password set before it and ends every earlier session,
-- unless it comes with that signup's flow token (only the signup requester
-- holds it, only the mailbox owner can read the code or link): then it is one
-- party, and the password and that session stay.
ALTER TABLE one_time_tokens
    ADD COLUMN signup_password_fingerprint bytea,
    ADD COLUMN signup_session_id uuid REFERENCES sessions (id) ON DELETE SET NULL,
    ADD CONSTRAINT one_time_tokens_signup_check CHECK (
        purpose = 'verify_email'
        OR (signup_password_fingerprint IS NULL AND signup_session_id IS NULL));
