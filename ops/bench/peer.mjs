// The benchmark's peer: panva's oidc-provider (npm, the version pinned for the
// federation tests), configured as fairly as oneauth is to itself for the
// client_credentials grant: one ES256 signing key, JWT access tokens (resource
// indicators with accessTokenFormat 'jwt'), one confidential client
// (client_secret_basic), the default in-memory adapter, one Node process.
// Started by ops/bench/peer.py:
//
//   node peer.mjs          (environment: PEER_PORT, PEER_CLIENT_SECRET)
//
// Listens on 127.0.0.1:PEER_PORT; stops with SIGTERM (its process group, by peer.py).

import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.env.PEER_PORT);
const secret = process.env.PEER_CLIENT_SECRET || '';
if (!port || secret.length < 16) {
  console.error('PEER_PORT and PEER_CLIENT_SECRET (16+ characters) are required');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const resource = 'urn:oneauth:bench:api';
const scope = 'bench:read';
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  jwks: { keys: [{ ...ec, kid: 'bench-es256', alg: 'ES256', use: 'sig' }] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  clients: [{
    client_id: 'bench',
    client_secret: secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256', // the only key; no ID tokens are issued
    scope,
  }],
  scopes: [scope],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope,
        audience: resource,
        accessTokenTTL: 900,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});

const server = provider.listen(port, '127.0.0.1');
const stop = () => { server.close(() => process.exit(0)); setTimeout(() => process.exit(0), 2000).unref(); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
