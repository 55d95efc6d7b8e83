// A second, independent authorization server for the test suite: panva's oidc-provider
// (npm), configured here. Started and stopped by tests/support/oidc_provider/__init__.py.
//
//   node server.mjs CONFIG.json
//
// CONFIG (written by the Python side): clients (oidc-provider client metadata),
// accounts ({username: password}), claims ({username: {email, email_verified, name}},
// optional; given out for the `email` and `profile` scopes), control_token (guards /_test/), registration_token
// (the initial access token of RFC 7591 registration), device_interval and
// access_token_lifetime (seconds).
//
// It binds 127.0.0.1 on a port the kernel picks, then prints one line
// "listening http://127.0.0.1:PORT" on stdout; the issuer is that URL. It exits when
// its stdin closes (the test process is gone) or on SIGTERM.
//
// What it adds to oidc-provider: sign-in and consent pages of its own (plain HTML forms,
// so a test drives them over HTTP), the device authorization answer's `interval`, one
// resource server for the `read` and `write` scopes, and /_test/ controls (counters,
// access token lifetime, accounts added while it runs).

import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const runtime = {
  deviceInterval: config.device_interval ?? 1,
  accessTokenLifetime: config.access_token_lifetime ?? 3600,
  tokenRequests: {},
  requests: {},
  accounts: { ...config.accounts },
  claims: { ...(config.claims ?? {}) },
};
const RESOURCE_SCOPES = ['read', 'write'];

const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
// Access tokens for `read` / `write` are for this resource server (RFC 8707).
const apiResource = `${issuer}/api`;

function html(title, body) {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;
}

function escape(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function wantsResourceScopes(scope) {
  return (scope ?? '').split(' ').some((s) => RESOURCE_SCOPES.includes(s));
}

// A signing key for ID tokens made at each start (oidc-provider would otherwise use
// its development key and warn).
const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: { keys: [{ ...signingKey, kid: 'signing-1', use: 'sig', alg: 'RS256' }] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  async findAccount(ctx, id) {
    if (!Object.hasOwn(runtime.accounts, id)) return undefined;
    return { accountId: id, async claims() { return { ...(runtime.claims[id] ?? {}), sub: id }; } };
  },
  // email and profile: for signing people in by their verified email (OpenID Connect
  // Core 5.4); the claims go to UserInfo (and into the ID token only without an access
  // token, oidc-provider's conformIdTokenClaims).
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  scopes: ['openid', 'offline_access', 'email', 'profile', ...RESOURCE_SCOPES],
  // Every client allowed the refresh_token grant gets a refresh token, as with DOT
  // (oidc-provider's default asks for the offline_access scope and prompt=consent).
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  interactions: {
    url(ctx, interaction) {
      return `/interaction/${interaction.uid}`;
    },
  },
  ttl: {
    AccessToken: () => runtime.accessTokenLifetime,
    ClientCredentials: () => runtime.accessTokenLifetime,
    AuthorizationCode: 60,
    DeviceCode: 600,
    IdToken: 3600,
    RefreshToken: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
    Interaction: 3600,
    Session: 14 * 24 * 3600,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // Any authenticated client may introspect (a resource server would); a public
      // client only its own tokens.
      async allowedPolicy(ctx, client, token) {
        return client.clientAuthMethod !== 'none' || token.clientId === client.clientId;
      },
    },
    revocation: {
      enabled: true,
      // RFC 7009 section 2.1: the server "verifies whether the token was issued to the
      // client making the revocation request"; another client's token is left alone.
      async allowedPolicy(ctx, client, token) {
        return token.clientId === client.clientId;
      },
    },
    registration: { enabled: true, initialAccessToken: config.registration_token },
    deviceFlow: {
      enabled: true,
      // Plain pages; the forms are oidc-provider's own (with its CSRF token).
      async userCodeInputSource(ctx, form, out, err) {
        const message = err ? `<p id="error">${escape(err.message ?? 'error')}</p>` : '';
        ctx.body = html('Device code', `${message}${form}<button type="submit" form="op.deviceInputForm">Continue</button>`);
      },
      async userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
        ctx.body = html('Confirm device', `<p>Code <code>${escape(userCode)}</code> for ${escape(client.clientId)}</p>${form}`
          + '<button type="submit" form="op.deviceConfirmForm">Continue</button>'
          + '<button type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Abort</button>');
      },
      async successSource(ctx) {
        ctx.body = html('Device signed in', '<p id="device-result">authorized</p>');
      },
    },
    resourceIndicators: {
      enabled: true,
      // No `resource` parameter: a request for read/write (and every client
      // credentials request) is for the API; one for OpenID scopes only is not.
      async defaultResource(ctx, client, oneOf) {
        if (oneOf) return oneOf;
        const grantType = ctx.oidc.params?.grant_type;
        if (grantType === 'client_credentials' || wantsResourceScopes(ctx.oidc.params?.scope)) {
          return apiResource;
        }
        return undefined;
      },
      // The authorization code and refresh token requests carry no `resource`: use the
      // one granted at the authorization endpoint.
      async useGrantedResource() {
        return true;
      },
      async getResourceServerInfo(ctx, resourceIndicator) {
        if (resourceIndicator !== apiResource) throw new errors.InvalidTarget();
        return {
          scope: RESOURCE_SCOPES.join(' '),
          audience: apiResource,
          accessTokenFormat: 'opaque',
          accessTokenTTL: runtime.accessTokenLifetime,
        };
      },
    },
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = html('Error', `<p id="error">${escape(out.error)}: ${escape(out.error_description ?? '')}</p>`);
  },
});

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
    req.on('error', reject);
  });
}

async function readForm(req) {
  return Object.fromEntries(new URLSearchParams(await readBody(req)));
}

function controlAllowed(ctx) {
  const given = Buffer.from(ctx.get('x-control-token'));
  const expected = Buffer.from(config.control_token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

async function control(ctx) {
  if (ctx.path === '/_test/health') {
    ctx.body = { ok: true };
    return;
  }
  if (!controlAllowed(ctx)) {
    ctx.status = 403;
    ctx.body = { error: 'bad control token' };
    return;
  }
  if (ctx.path === '/_test/counters') {
    if (ctx.method === 'POST') {
      runtime.tokenRequests = {};
      runtime.requests = {};
    }
    ctx.body = { token_requests: runtime.tokenRequests, requests: runtime.requests };
    return;
  }
  if (ctx.path === '/_test/accounts' && ctx.method === 'POST') {
    const body = JSON.parse((await readBody(ctx.req)) || '{}');
    runtime.accounts[body.username] = body.password;
    runtime.claims[body.username] = body.claims ?? {};
    ctx.body = { username: body.username };
    return;
  }
  if (ctx.path === '/_test/settings' && ctx.method === 'POST') {
    const body = JSON.parse((await readBody(ctx.req)) || '{}');
    if ('access_token_lifetime' in body) runtime.accessTokenLifetime = Number(body.access_token_lifetime);
    if ('device_interval' in body) runtime.deviceInterval = Number(body.device_interval);
    ctx.body = { access_token_lifetime: runtime.accessTokenLifetime, device_interval: runtime.deviceInterval };
    return;
  }
  ctx.status = 404;
  ctx.body = { error: 'no such control' };
}

// --- sign-in and consent pages -------------------------------------------------------

async function interaction(ctx, uid, action) {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) ctx.throw(400, 'interaction mismatch');
  const { prompt, params, session } = details;

  if (ctx.method === 'GET' && !action) {
    ctx.type = 'html';
    if (prompt.name === 'login') {
      ctx.body = html('Sign in', `<h1>Sign in to ${escape(params.client_id)}</h1>`
        + `<form id="login" method="post" action="/interaction/${uid}/login">`
        + '<input type="text" name="username" required>'
        + '<input type="password" name="password" required>'
        + '<button type="submit">Sign in</button></form>'
        + `<form id="deny" method="post" action="/interaction/${uid}/abort"><button type="submit">Cancel</button></form>`);
    } else {
      const scopes = [...(prompt.details.missingOIDCScope ?? []),
        ...Object.values(prompt.details.missingResourceScopes ?? {}).flat()];
      ctx.body = html('Consent', `<h1>${escape(params.client_id)} asks for: ${escape(scopes.join(' '))}</h1>`
        + `<form id="consent" method="post" action="/interaction/${uid}/confirm"><button type="submit" name="allow" value="yes">Allow</button></form>`
        + `<form id="deny" method="post" action="/interaction/${uid}/abort"><button type="submit">Deny</button></form>`);
    }
    return;
  }
  if (ctx.method !== 'POST') ctx.throw(405);

  let result;
  if (action === 'login') {
    if (prompt.name !== 'login') ctx.throw(400, 'not at sign-in');
    const form = await readForm(ctx.req);
    const known = Object.hasOwn(runtime.accounts, form.username);
    if (!known || runtime.accounts[form.username] !== form.password) {
      ctx.status = 200;
      ctx.type = 'html';
      ctx.body = html('Sign in', '<p id="error">invalid username or password</p>');
      return;
    }
    result = { login: { accountId: form.username } };
  } else if (action === 'confirm') {
    if (prompt.name !== 'consent') ctx.throw(400, 'not at consent');
    await readForm(ctx.req);
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  } else if (action === 'abort') {
    result = { error: 'access_denied', error_description: 'the user refused' };
  } else {
    ctx.throw(404);
  }
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: action !== 'abort',
  });
  ctx.status = 303;
  ctx.redirect(returnTo);
}

provider.use(async (ctx, next) => {
  if (ctx.path.startsWith('/_test/')) {
    await control(ctx);
    return;
  }
  const match = ctx.path.match(/^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/);
  if (match) {
    await interaction(ctx, match[1], match[2]);
    return;
  }
  await next();
  const route = ctx.oidc?.route;
  if (route) {
    runtime.requests[route] = (runtime.requests[route] ?? 0) + 1;
    if (route === 'token') {
      const grantType = ctx.oidc.params?.grant_type ?? '(none)';
      runtime.tokenRequests[grantType] = (runtime.tokenRequests[grantType] ?? 0) + 1;
    }
    // RFC 8628 section 3.2: "interval OPTIONAL. The minimum amount of time in seconds
    // that the client SHOULD wait between polling requests"; oidc-provider leaves it
    // out (so 5 s), the suite wants it short.
    if (route === 'device_authorization' && ctx.status === 200 && ctx.body) {
      ctx.body = { ...ctx.body, interval: runtime.deviceInterval };
    }
  }
});

server.on('request', provider.callback());
process.stdout.write(`listening ${issuer}\n`);

// The test process holds our stdin: when it goes away, so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
