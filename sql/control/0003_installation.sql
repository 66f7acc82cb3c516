-- What the operator's commands need to know about this installation (D1, D2).
-- One row. Owned by the operator role; the service role may only read it.
CREATE TABLE installation (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- Part of every app role's name (oneauth.db.naming): roles are cluster-wide,
    -- so two installations on one cluster need different namespaces.
    role_namespace  text NOT NULL CHECK (role_namespace ~ '^[a-z][a-z0-9]{2,11}$'),
    -- The login role `oneauth serve` uses: each new app role is granted to it.
    -- NULL until `oneauth db bootstrap` names one (a single-role installation).
    service_role    text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- A new namespace for every control schema: a letter and five letters or digits.
-- `oneauth db bootstrap --namespace` may replace it before the first app.
INSERT INTO installation (role_namespace)
SELECT chr(97 + floor(random() * 26)::int)
       || string_agg(substr('abcdefghijklmnopqrstuvwxyz0123456789',
                            1 + floor(random() * 36)::int, 1), '')
FROM generate_series(1, 5);

-- Apps provisioned before this file keep their legacy role names (namespace '');
-- provisioning records the namespace each new app's role was named with.
ALTER TABLE apps
    ADD COLUMN role_namespace text NOT NULL DEFAULT ''
    CHECK (role_namespace = '' OR role_namespace ~ '^[a-z][a-z0-9]{2,11}$');
