// An independent OpenID Connect provider for Tessera's tests: panva's oidc-provider,
// started on a loopback port with one confidential client.
//
//   node provider.mjs --port 4100 --client-id tessera --client-secret S \
//        --redirect-uri http://127.0.0.1:8080/v1/login/idp/callback [--alg RS256|ES256]
//        [--auth-method client_secret_basic|client_secret_post]
//
// Every start makes a fresh signing key with a fresh kid, so restarting on the same port
// is a key rotation. Sign-in uses the package's development interactions: any login name
// and any password are accepted, and the login name becomes the subject. PKCE (S256) is
// required. ID tokens carry email, email_verified, name, preferred_username, amr and acr.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

function args() {
  const out = { alg: 'RS256', 'auth-method': 'client_secret_basic' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    out[argv[i].replace(/^--/, '')] = argv[i + 1];
  }
  for (const needed of ['port', 'client-id', 'client-secret', 'redirect-uri']) {
    if (!out[needed]) {
      console.error(`missing --${needed}`);
      process.exit(2);
    }
  }
  return out;
}

function signingKey(alg) {
  const kid = randomBytes(8).toString('hex');
  const pair = alg === 'ES256'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...pair.privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

const opts = args();
const issuer = `http://127.0.0.1:${opts.port}`;
const key = signingKey(opts.alg);

const provider = new Provider(issuer, {
  clients: [{
    client_id: opts['client-id'],
    client_secret: opts['client-secret'],
    redirect_uris: opts['redirect-uri'].split(','),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: opts['auth-method'],
    id_token_signed_response_alg: opts.alg,
  }],
  jwks: { keys: [key] },
  enabledJWA: { idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA'] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  // Email and profile claims in the ID token itself, not only at the user-info endpoint.
  conformIdTokenClaims: false,
  // amr (RFC 8176) and acr only reach the ID token through a scope; openid is always there.
  claims: {
    auth_time: null,
    iss: null,
    sid: null,
    openid: ['sub', 'amr', 'acr'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  cookies: { keys: [randomBytes(16).toString('hex')] },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: `${id}@example.test`,
          email_verified: true,
          name: `Test ${id}`,
          preferred_username: id,
        };
      },
    };
  },
  // A first-party client: the grant is made at once, so sign-in is one login form and no
  // consent screen.
  async loadExistingGrant(ctx) {
    const existing = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (existing) {
      return ctx.oidc.provider.Grant.find(existing);
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile');
    grant.addOIDCClaims(['email', 'email_verified', 'name', 'preferred_username']);
    await grant.save();
    return grant;
  },
});

// The development login form records no authentication method; a password login is what
// it stands for, so say so (RFC 8176 `pwd`), with an acr the tests can recognise.
const interactionResult = provider.interactionResult.bind(provider);
provider.interactionResult = (req, res, result, options) => {
  if (result.login) {
    result.login.amr = ['pwd'];
    result.login.acr = 'urn:tessera:test:password';
  }
  return interactionResult(req, res, result, options);
};

provider.listen(Number(opts.port), '127.0.0.1', () => {
  console.log(JSON.stringify({ issuer, kid: key.kid, alg: key.alg }));
});
