-- App roles and permissions (issue 13). The app's own vocabulary: a permission
-- is a name such as "invoice:read", a role bundles permissions, and a user
-- holds roles app-wide (the access token's "roles" claim, and "permissions"
-- when the client asks). Nothing here is visible to any other app's schema.
-- Names: ASCII, bounded, case-sensitive as written (validated again in
-- oneauth.orgs.names, which gives the clear 4xx).
CREATE TABLE permissions (
    name         text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9:._-]{0,99}$'),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE roles (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9:._-]{0,63}$'),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE role_permissions (
    role_id     uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission  text NOT NULL REFERENCES permissions (name) ON DELETE CASCADE,
    PRIMARY KEY (role_id, permission)
);

CREATE INDEX role_permissions_permission_idx ON role_permissions (permission);

CREATE TABLE user_roles (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id     uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, role_id)
);

CREATE INDEX user_roles_role_idx ON user_roles (role_id);
