-- Organizations: customer tenants inside this one app (issue 13). An org id
-- ("org_" + random) or slug names a row of this schema only: the same slug in
-- another app is another, unrelated organization (B1).
CREATE TABLE organizations (
    id            text PRIMARY KEY CHECK (id ~ '^org_[A-Za-z0-9_-]{16,64}$'),
    slug          text NOT NULL UNIQUE
                  CHECK (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$'),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Suspended: no new org-scoped token (authorize, refresh, client_credentials).
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    -- Members must sign in with two factors when they sign in for this org.
    mfa_required  boolean NOT NULL DEFAULT false,
    -- Domain auto-join (JIT) for users whose email at a verified domain is verified.
    join_policy   text NOT NULL DEFAULT 'off' CHECK (join_policy IN ('off', 'offer', 'automatic')),
    -- Shown on the hosted pages inside the app's branding: {"display_name", "logo_url",
    -- "primary_color"}; validated by the service.
    branding      jsonb NOT NULL DEFAULT '{}'
                  CHECK (jsonb_typeof(branding) = 'object' AND length(branding::text) <= 4096),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Org roles: one per-app set (org_id NULL, the template every org has, like
-- Logto's organization template) plus custom roles an org adds for itself.
-- A custom role's name never equals a template name (checked by the service
-- with the org row locked; a unique index cannot span both).
CREATE TABLE org_roles (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       text REFERENCES organizations (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9:._-]{0,63}$'),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX org_roles_template_name_key ON org_roles (name) WHERE org_id IS NULL;
CREATE UNIQUE INDEX org_roles_custom_name_key ON org_roles (org_id, name) WHERE org_id IS NOT NULL;

CREATE TABLE org_role_permissions (
    org_role_id  uuid NOT NULL REFERENCES org_roles (id) ON DELETE CASCADE,
    permission   text NOT NULL REFERENCES permissions (name) ON DELETE CASCADE,
    PRIMARY KEY (org_role_id, permission)
);

-- The role new members get when nothing else is said (domain join, an
-- invitation without roles).
ALTER TABLE organizations
    ADD COLUMN default_role_id uuid REFERENCES org_roles (id) ON DELETE SET NULL;

CREATE TABLE org_members (
    org_id      text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_via  text NOT NULL
                CHECK (joined_via IN ('created', 'operator', 'invitation', 'domain', 'api')),
    joined_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);

CREATE INDEX org_members_user_idx ON org_members (user_id);

CREATE TABLE org_member_roles (
    org_id       text NOT NULL,
    user_id      uuid NOT NULL,
    org_role_id  uuid NOT NULL REFERENCES org_roles (id) ON DELETE CASCADE,
    PRIMARY KEY (org_id, user_id, org_role_id),
    FOREIGN KEY (org_id, user_id) REFERENCES org_members (org_id, user_id) ON DELETE CASCADE
);

-- Invitations: single use, expiring, stored as a keyed hash of the token
-- that only the mail carries. Accepting needs a signed-in user whose
-- verified email is exactly email_normalized.
CREATE TABLE org_invitations (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id            text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email             text NOT NULL CHECK (length(email) <= 320),
    email_normalized  text NOT NULL CHECK (length(email_normalized) <= 320),
    token_hash        bytea NOT NULL UNIQUE,
    -- 'user:<uuid>', 'operator', 'client:<client_id>'
    invited_by        text NOT NULL CHECK (length(invited_by) <= 200),
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    accepted_at       timestamptz,
    accepted_by       uuid REFERENCES users (id) ON DELETE SET NULL,
    revoked_at        timestamptz
);

-- One open invitation per address and org: inviting again replaces it.
CREATE UNIQUE INDEX org_invitations_open_key ON org_invitations (org_id, email_normalized)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

CREATE TABLE org_invitation_roles (
    invitation_id  uuid NOT NULL REFERENCES org_invitations (id) ON DELETE CASCADE,
    org_role_id    uuid NOT NULL REFERENCES org_roles (id) ON DELETE CASCADE,
    PRIMARY KEY (invitation_id, org_role_id)
);

-- Email domains of an org. The operator marks one verified (CLI; no DNS
-- check here); a verified domain belongs to one org of the app at most.
CREATE TABLE org_domains (
    org_id       text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    domain       text NOT NULL CHECK (domain ~ '^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    verified_at  timestamptz,
    PRIMARY KEY (org_id, domain)
);

CREATE UNIQUE INDEX org_domains_verified_key ON org_domains (domain) WHERE verified_at IS NOT NULL;

-- Org-scoped tokens. A session (refresh family) is for at most one org at a
-- time; a refresh naming another org the user belongs to switches it. Deleting
-- an org revokes its sessions first (service), then clears the column.
ALTER TABLE sessions ADD COLUMN org_id text REFERENCES organizations (id) ON DELETE SET NULL;
CREATE INDEX sessions_org_idx ON sessions (org_id) WHERE org_id IS NOT NULL AND revoked_at IS NULL;

-- The org chosen during the authorization request, carried to the token exchange.
ALTER TABLE authorization_codes ADD COLUMN org_id text REFERENCES organizations (id) ON DELETE CASCADE;

-- A client registered for one org (clients create --org): its client_credentials
-- tokens are for that org only. Deleted with the org.
ALTER TABLE clients ADD COLUMN org_id text REFERENCES organizations (id) ON DELETE CASCADE;

-- Built-in org permissions and the template roles every app starts with.
-- Managing members and invitations is checked against these permission
-- names, never against a role name: an app may rename or rebuild the roles.
INSERT INTO permissions (name, description) VALUES
    ('org:read', 'see the organization and its members'),
    ('org:members:write', 'change members'' org roles and remove members'),
    ('org:invitations:write', 'invite to the organization and revoke invitations'),
    ('org:settings:write', 'change the organization''s name, branding and policies');

INSERT INTO org_roles (name, description) VALUES
    ('admin', 'manages the organization'),
    ('member', 'belongs to the organization');

INSERT INTO org_role_permissions (org_role_id, permission)
SELECT r.id, p.name FROM org_roles r, permissions p
WHERE r.org_id IS NULL AND r.name = 'admin' AND p.name LIKE 'org:%';

INSERT INTO org_role_permissions (org_role_id, permission)
SELECT r.id, 'org:read' FROM org_roles r WHERE r.org_id IS NULL AND r.name = 'member';
