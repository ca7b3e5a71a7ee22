// An OAuth 2 client built on oauth4webapi (panva), an implementation Tessera's tests do
// not share code with. The browser tests run it with node:
//
//   node client.mjs authorize-url <base> <issuer> <client_id> <redirect_uri> <scope>
//       -> {"url", "state", "verifier"}: PKCE and state made by the library
//   node client.mjs exchange <base> <issuer> <client_id> <redirect_uri> <callback_url> <state> <verifier>
//       -> the token response; the library checks state and iss (RFC 9207) first
//   node client.mjs device <base> <issuer> <client_id> <scope>
//       -> one line {"user_code", "verification_uri_complete"}, then polls (RFC 8628)
//          and prints the token response
//
// Failures print {"error": ...} and exit 1.
import * as oauth from 'oauth4webapi';

const [command, base, issuer, clientId, ...rest] = process.argv.slice(2);
const as = {
  issuer,
  authorization_endpoint: `${base}/oauth/authorize`,
  token_endpoint: `${base}/oauth/token`,
  device_authorization_endpoint: `${base}/oauth/device_authorization`,
  authorization_response_iss_parameter_supported: true,
};
const client = { client_id: clientId };
const auth = oauth.None();
// The tests serve plain HTTP on 127.0.0.1.
const options = { [oauth.allowInsecureRequests]: true };

function print(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function authorizeUrl(redirectUri, scope) {
  const verifier = oauth.generateRandomCodeVerifier();
  const challenge = await oauth.calculatePKCECodeChallenge(verifier);
  const state = oauth.generateRandomState();
  const url = new URL(as.authorization_endpoint);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('client_id', clientId);
  url.searchParams.set('redirect_uri', redirectUri);
  url.searchParams.set('scope', scope);
  url.searchParams.set('state', state);
  url.searchParams.set('code_challenge', challenge);
  url.searchParams.set('code_challenge_method', 'S256');
  print({ url: url.href, state, verifier });
}

async function exchange(redirectUri, callbackUrl, state, verifier) {
  const params = oauth.validateAuthResponse(as, client, new URL(callbackUrl), state);
  const response = await oauth.authorizationCodeGrantRequest(
    as, client, auth, params, redirectUri, verifier, options);
  print(await oauth.processAuthorizationCodeResponse(as, client, response));
}

async function device(scope) {
  const started = await oauth.processDeviceAuthorizationResponse(as, client,
    await oauth.deviceAuthorizationRequest(as, client, auth, { scope }, options));
  print({ user_code: started.user_code, verification_uri_complete: started.verification_uri_complete });
  let interval = started.interval ?? 5;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, interval * 1000));
    try {
      const response = await oauth.deviceCodeGrantRequest(as, client, auth, started.device_code, options);
      print(await oauth.processDeviceCodeResponse(as, client, response));
      return;
    } catch (err) {
      if (err instanceof oauth.ResponseBodyError && err.error === 'authorization_pending') continue;
      if (err instanceof oauth.ResponseBodyError && err.error === 'slow_down') { interval += 5; continue; }
      throw err;
    }
  }
}

try {
  if (command === 'authorize-url') await authorizeUrl(...rest);
  else if (command === 'exchange') await exchange(...rest);
  else if (command === 'device') await device(...rest);
  else throw new Error(`unknown command ${command}`);
} catch (err) {
  print({ error: err.error ?? err.code ?? 'failed', message: String(err.message ?? err) });
  process.exit(1);
}
