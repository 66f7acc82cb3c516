// A real OpenID Provider for the federation tests: panva's oidc-provider (npm,
// pinned by package-lock.json), configured here and nothing else written by us
// on the protocol side. Started by tests/federation/conftest.py:
//
//   node op.mjs            (environment: RIG_TOKEN, optional RIG_HOST, RIG_CONFORM)
//
// It listens on RIG_HOST (default 127.0.0.1) on an ephemeral port, builds the
// issuer http://<host>:<port> from it, and prints one JSON line
// {"issuer": ..., "pid": ...} on stdout once it answers. Signing keys (RS256 and
// ES256) are generated at every start. Clients register themselves through
// dynamic client registration (POST /reg, open), so each test has its own client
// with its exact redirect URIs. PKCE is required for every client; RFC 9207
// `iss` is in every authorization response (oidc-provider always adds it).
//
// Accounts live in memory and are set by the test over PUT /_rig/accounts/<sub>
// (header x-rig-token: RIG_TOKEN) with the claims the account has: email,
// email_verified, name, and optionally amr/acr used at sign-in. The login page is
// a plain HTML form (no JavaScript): field `login` = the account's sub; then a
// consent page with one "Continue" button. Both work with httpx and Chromium.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const token = process.env.RIG_TOKEN || '';
if (token.length < 16) {
  console.error('RIG_TOKEN (16+ characters) is required');
  process.exit(2);
}
const host = process.env.RIG_HOST || '127.0.0.1';
// RIG_CONFORM=1: the ID token of a code flow carries only sub and the
// protocol claims; email etc. are in userinfo only (oidc-provider's default).
const conform = process.env.RIG_CONFORM === '1';

const accounts = new Map();

function signingKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: `rs-${randomUUID()}`, alg: 'RS256', use: 'sig' },
    { ...ec, kid: `es-${randomUUID()}`, alg: 'ES256', use: 'sig' },
  ];
}

function esc(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body><h1>${esc(title)}</h1>${body}</body></html>`;
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 65536) throw new Error('body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const type = req.headers['content-type'] || '';
  if (type.startsWith('application/json')) return JSON.parse(text || '{}');
  return Object.fromEntries(new URLSearchParams(text));
}

async function findAccount(_ctx, sub) {
  const claims = accounts.get(sub);
  if (!claims) return undefined;
  return {
    accountId: sub,
    async claims(_use, _scope) {
      const { amr: _amr, acr: _acr, ...rest } = claims;
      return { ...rest, sub };
    },
  };
}

const server = createServer();
await new Promise((resolve) => { server.listen(0, host, resolve); });
const { port } = server.address();
const issuer = `http://${host}:${port}`;

const provider = new Provider(issuer, {
  jwks: { keys: signingKeys() },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  findAccount,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name'],
  },
  conformIdTokenClaims: conform,
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true, initialAccessToken: false },
    // RFC 7592: a test can register first and set the exact redirect URI once the
    // downstream provider record (and so its callback URL) exists.
    registrationManagement: { enabled: true, rotateRegistrationAccessToken: false },
    claimsParameter: { enabled: true },
    revocation: { enabled: true },
  },
  pkce: { required: () => true },
  responseTypes: ['code'],
  enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256'] },
  clientDefaults: {
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: 'RS256',
    token_endpoint_auth_method: 'client_secret_basic',
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: {
    AccessToken: 600,
    AuthorizationCode: 60,
    IdToken: 600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
    RefreshToken: 3600,
    ClientCredentials: 600,
  },
});

// The test's side door: accounts. Only with the token the fixture generated.
provider.use(async (ctx, next) => {
  const match = /^\/_rig\/accounts\/([^/]+)$/.exec(ctx.path);
  if (!match) return next();
  if (ctx.get('x-rig-token') !== token) {
    ctx.status = 403;
    return undefined;
  }
  const sub = decodeURIComponent(match[1]);
  if (ctx.method === 'PUT') {
    const claims = await readForm(ctx.req);
    accounts.set(sub, claims);
    ctx.status = 204;
  } else if (ctx.method === 'DELETE') {
    accounts.delete(sub);
    ctx.status = 204;
  } else {
    ctx.status = 405;
  }
  return undefined;
});

// The login and consent interaction: plain forms.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/.exec(ctx.path);
  if (!match) return next();
  ctx.set('cache-control', 'no-store');
  const [, uid, step] = match;
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) ctx.throw(400, 'interaction mismatch');
  const { prompt, params, session } = details;

  if (!step && ctx.method === 'GET') {
    ctx.type = 'html';
    if (prompt.name === 'login') {
      const error = ctx.query.error ? `<p role="alert">${esc(ctx.query.error)}</p>` : '';
      ctx.body = page('Sign in to the upstream', `${error}
<form method="post" action="/interaction/${esc(uid)}/login">
  <label>Account <input name="login" autocomplete="username" required></label>
  <button type="submit">Sign in</button>
</form>
<p><a href="/interaction/${esc(uid)}/abort">Cancel</a></p>`);
    } else {
      ctx.body = page('Authorize', `<p>${esc(params.client_id)} asks for: ${esc(params.scope)}</p>
<form method="post" action="/interaction/${esc(uid)}/confirm">
  <button type="submit">Continue</button>
</form>
<p><a href="/interaction/${esc(uid)}/abort">Cancel</a></p>`);
    }
    return undefined;
  }

  if (step === 'login' && ctx.method === 'POST') {
    if (prompt.name !== 'login') ctx.throw(400, 'not a login prompt');
    const form = await readForm(ctx.req);
    const sub = String(form.login || '');
    const claims = accounts.get(sub);
    if (!claims) {
      ctx.status = 303;
      ctx.redirect(`/interaction/${uid}?error=${encodeURIComponent('unknown account')}`);
      return undefined;
    }
    const login = { accountId: sub };
    if (Array.isArray(claims.amr)) login.amr = claims.amr;
    if (typeof claims.acr === 'string') login.acr = claims.acr;
    return provider.interactionFinished(ctx.req, ctx.res, { login }, { mergeWithLastSubmission: false });
  }

  if (step === 'confirm' && ctx.method === 'POST') {
    if (prompt.name !== 'consent') ctx.throw(400, 'not a consent prompt');
    await readForm(ctx.req);
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    return provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }

  if (step === 'abort' && ctx.method === 'GET') {
    return provider.interactionFinished(ctx.req, ctx.res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }
  ctx.throw(405, 'method not allowed');
  return undefined;
});

server.on('request', provider.callback());
process.stdout.write(`${JSON.stringify({ issuer, pid: process.pid })}\n`);

const stop = () => { server.close(() => process.exit(0)); setTimeout(() => process.exit(0), 2000).unref(); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The fixture holds our stdin open: when it goes (the test run died), so do we.
process.stdin.on('end', stop);
process.stdin.resume();
