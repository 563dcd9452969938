// Interop: oauth4webapi, unmodified, against the dpop-nonce example server.
//
//   npm ci --prefix tests/interop && node tests/interop/interop.mjs [path/to/server]
//
// Without a path, the server example is built with cargo, which reports where the binary is.
// Every request goes through a counting fetch, so each nonce dance is checked to take exactly
// the expected requests: a first attempt refused with use_dpop_nonce, then one retry.
//
// The scenarios run twice: against the server with in-memory state, then with `--redis` on a
// redis-server this script starts on a unix socket in a temporary directory and stops at the
// end. Without redis-server on PATH the Redis run is skipped, loudly; with CI set, that fails.

import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createInterface } from 'node:readline'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import * as oauth from 'oauth4webapi'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CLIENT = { client_id: 'demo-client' }
const SECRET = 'demo-secret'
const NQCHAR = /^[\x21\x23-\x5b\x5d-\x7e]+$/
// The features examples/server needs (Cargo.toml, [[example]] server).
const SERVER_FEATURES = 'axum,proof,tower,tokio,derived'
// The proof algorithms every dance is run with, and the WebCrypto key each one needs.
const RSA = { modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
const KEY_ALGORITHMS = {
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
  PS256: { name: 'RSA-PSS', ...RSA },
  RS256: { name: 'RSASSA-PKCS1-v1_5', ...RSA },
  Ed25519: { name: 'Ed25519' },
}

let passed = 0
let failed = 0
const servers = new Set()

function check(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`)
}

// The server binary: the path given, or the one cargo reports after building the example.
function serverBinary() {
  if (process.argv[2]) return resolve(process.argv[2])
  const build = spawnSync(
    'cargo',
    [
      'build',
      '--locked',
      '--example',
      'server',
      '--features',
      SERVER_FEATURES,
      '--message-format',
      'json',
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 256 << 20 },
  )
  if (build.status !== 0) throw new Error('cargo build --example server failed')
  for (const line of build.stdout.split('\n')) {
    if (!line.startsWith('{')) continue
    const message = JSON.parse(line)
    if (
      message.reason === 'compiler-artifact' &&
      message.target?.name === 'server' &&
      message.target?.kind?.includes('example') &&
      message.executable
    ) {
      return message.executable
    }
  }
  throw new Error('cargo did not report the server executable')
}

// Starts the server on port 0 and resolves with its base URL once it printed the bound port.
function startServer(binary, extraArgs = []) {
  const child = spawn(binary, ['--addr', '127.0.0.1:0', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  servers.add(child)
  child.on('exit', () => servers.delete(child))
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not report its port in 60 s')), 60_000)
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`server exited early with code ${code}`))
    })
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line)
      if (match) {
        clearTimeout(timer)
        resolvePromise({ child, base: `http://127.0.0.1:${match[1]}` })
      }
    })
  })
}

function stopServer(child) {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
}

// One part (0: header, 1: claims) of the DPoP proof a request carries, or null.
function proofPart(init, index) {
  const proof = init?.headers?.dpop
  if (typeof proof !== 'string') return null
  return JSON.parse(Buffer.from(proof.split('.')[index], 'base64url').toString('utf8'))
}

// A key pair for `alg`, made with WebCrypto; the private key cannot be exported.
async function generateDpopKeyPair(alg) {
  const algorithm = KEY_ALGORITHMS[alg]
  if (!algorithm) throw new Error(`no WebCrypto key for ${alg}`)
  return crypto.subtle.generateKey(algorithm, false, ['sign', 'verify'])
}

// A fetch that records every exchange (the nonce sent, the status, the nonce handed out), for
// exact request counts.
//
// `route` picks the address a request goes to: a load balancer in front of replicas that share
// one public URL. By default, the URL itself.
function countingFetch(route = (url) => url) {
  const log = []
  const fetchFn = async (url, init) => {
    const sent = proofPart(init, 1)?.nonce ?? null
    const alg = proofPart(init, 0)?.alg ?? null
    const response = await fetch(route(new URL(url)), init)
    const nonce = response.headers.get('dpop-nonce')
    log.push({ path: new URL(url).pathname, sent, alg, status: response.status, nonce })
    return response
  }
  return { log, fetchFn }
}

// Runs one call with at most one retry on a use_dpop_nonce error, and returns the number of
// retries it took. A second nonce error, or any other error, fails the run.
async function withNonceRetry(call) {
  let retries = 0
  for (;;) {
    try {
      return { result: await call(), retries }
    } catch (err) {
      if (!oauth.isDPoPNonceError(err)) throw err
      retries += 1
      if (retries > 1) throw new Error('server asked for a nonce twice in a row')
    }
  }
}

function clientAuth(name) {
  return name === 'basic' ? oauth.ClientSecretBasic(SECRET) : oauth.ClientSecretPost(SECRET)
}

async function discover(base, options) {
  const issuer = new URL(base)
  const response = await oauth.discoveryRequest(issuer, { ...options, algorithm: 'oauth2' })
  const as = await oauth.processDiscoveryResponse(issuer, response)
  for (const alg of Object.keys(KEY_ALGORITHMS)) {
    check(as.dpop_signing_alg_values_supported?.includes(alg), `metadata lists ${alg}`)
  }
  return as
}

async function tokenRequest(as, auth, options) {
  return withNonceRetry(async () => {
    const response = await oauth.clientCredentialsGrantRequest(as, CLIENT, auth, {}, options)
    return oauth.processClientCredentialsResponse(as, CLIENT, response)
  })
}

async function resourceRequest(base, accessToken, options) {
  return withNonceRetry(async () => {
    const response = await oauth.protectedResourceRequest(
      accessToken,
      'GET',
      new URL('/resource', base),
      new Headers(),
      null,
      options,
    )
    check(response.status === 200, `resource answered ${response.status}`)
    return response.json()
  })
}

// Checks the exchanges logged since `from`: `statuses` in order, every proof signed with
// `alg`, every nonce header NQCHAR.
function expectExchanges(log, from, path, statuses, alg) {
  const seen = log.slice(from)
  check(
    seen.every((entry) => entry.path === path),
    `only ${path} was called: ${JSON.stringify(seen)}`,
  )
  check(
    seen.every((entry) => entry.alg === alg),
    `every proof to ${path} is ${alg}: ${JSON.stringify(seen.map((e) => e.alg))}`,
  )
  check(
    JSON.stringify(seen.map((entry) => entry.status)) === JSON.stringify(statuses),
    `${path} statuses ${JSON.stringify(statuses)}, got ${JSON.stringify(seen.map((e) => e.status))}`,
  )
  for (const entry of seen) {
    if (entry.nonce !== null) check(NQCHAR.test(entry.nonce), `nonce ${entry.nonce} is NQCHAR`)
  }
  seen.forEach((entry, index) => {
    if (entry.status < 400) return
    check(entry.nonce !== null, `the ${entry.status} from ${path} carries a DPoP-Nonce`)
    check(entry.nonce !== entry.sent, `the ${entry.status} hands out a nonce other than the one sent`)
    const retry = seen[index + 1]
    check(retry?.sent === entry.nonce, `the retry after the ${entry.status} uses the new nonce`)
  })
}

// The full dance for one client authentication method and one proof algorithm.
async function grantAndResource(base, authName, alg = 'ES256', route = undefined) {
  const { log, fetchFn } = countingFetch(route)
  const options = { [oauth.allowInsecureRequests]: true, [oauth.customFetch]: fetchFn }
  const as = await discover(base, options)
  const DPoP = oauth.DPoP(CLIENT, await generateDpopKeyPair(alg))
  const dpopOptions = { ...options, DPoP }

  let mark = log.length
  const token = await tokenRequest(as, clientAuth(authName), dpopOptions)
  check(token.retries === 1, `token request took ${token.retries} retries, expected 1`)
  check(token.result.token_type === 'dpop', `token_type is DPoP, got ${token.result.token_type}`)
  expectExchanges(log, mark, '/token', [400, 200], alg)

  // The authorization server's nonce is cached for the origin; the resource server refuses it
  // (RFC 9449 §9) and hands out its own.
  mark = log.length
  const first = await resourceRequest(base, token.result.access_token, dpopOptions)
  check(first.retries === 1, `first resource request took ${first.retries} retries, expected 1`)
  check(first.result.client_id === CLIENT.client_id, 'resource names the client')
  check(first.result.jkt === (await DPoP.calculateThumbprint()), 'token bound to the DPoP key')
  expectExchanges(log, mark, '/resource', [401, 200], alg)

  // The client now holds the resource server's nonce: no retry.
  mark = log.length
  const second = await resourceRequest(base, token.result.access_token, dpopOptions)
  check(second.retries === 0, `second resource request took ${second.retries} retries, expected 0`)
  expectExchanges(log, mark, '/resource', [200], alg)
}

// Rotation: wait until the client's nonce has left both windows, then recover with one retry.
async function rotation(base, seconds, alg) {
  const { log, fetchFn } = countingFetch()
  const options = { [oauth.allowInsecureRequests]: true, [oauth.customFetch]: fetchFn }
  const as = await discover(base, options)
  const DPoP = oauth.DPoP(CLIENT, await generateDpopKeyPair(alg))
  const dpopOptions = { ...options, DPoP }

  const token = await tokenRequest(as, clientAuth('basic'), dpopOptions)
  check(token.retries === 1, `token request took ${token.retries} retries, expected 1`)
  const warmUp = await resourceRequest(base, token.result.access_token, dpopOptions)
  check(warmUp.retries === 1, `first resource request took ${warmUp.retries} retries, expected 1`)

  await sleep((2 * seconds + 1) * 1000)
  const mark = log.length
  const after = await resourceRequest(base, token.result.access_token, dpopOptions)
  check(after.retries === 1, `resource request after rotation took ${after.retries} retries, expected 1`)
  expectExchanges(log, mark, '/resource', [401, 200], alg)
  check(log[mark].sent !== null, 'the refused request carried the expired nonce')
}

async function scenario(name, run) {
  const started = Date.now()
  try {
    await run()
    passed += 1
    console.log(`ok - ${name} (${Date.now() - started} ms)`)
  } catch (err) {
    failed += 1
    console.log(`not ok - ${name}: ${err?.stack ?? err}`)
  }
}

// `redis-server` on a unix socket in a fresh temporary directory, without persistence;
// resolves once the socket exists (Redis creates it once it listens).
async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), 'dpop-interop-redis-'))
  const socket = join(dir, 'redis.sock')
  const child = spawn(
    'redis-server',
    ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
  servers.add(child)
  child.on('exit', () => {
    servers.delete(child)
    rmSync(dir, { recursive: true, force: true })
  })
  const deadline = Date.now() + 10_000
  while (!existsSync(socket)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error('redis-server exited early')
    if (Date.now() > deadline) throw new Error('redis-server did not listen in 10 s')
    await sleep(20)
  }
  return { child, url: `redis+unix://${socket}` }
}

function redisServerInstalled() {
  return !spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).error
}

// Round-robin over the replicas' addresses, for URLs on the shared public URL.
function roundRobin(replicas) {
  let next = 0
  return (url) => {
    const target = new URL(url)
    const replica = new URL(replicas[next++ % replicas.length].base)
    target.host = replica.host
    return target
  }
}

// Every scenario against servers started with `args` (in-memory state when empty).
async function scenarios(mode, binary, args) {
  const ROTATION = 2
  const server = await startServer(binary, args)
  const rotating = await startServer(binary, ['--rotation', String(ROTATION), ...args])
  try {
    await scenario(`[${mode}] client_credentials + resource, client_secret_basic`, () =>
      grantAndResource(server.base, 'basic'),
    )
    await scenario(`[${mode}] client_credentials + resource, client_secret_post`, () =>
      grantAndResource(server.base, 'post'),
    )
    for (const alg of Object.keys(KEY_ALGORITHMS)) {
      await scenario(`[${mode}] client_credentials + resource, ${alg} proofs`, () =>
        grantAndResource(server.base, 'basic', alg),
      )
    }
    await scenario(`[${mode}] nonce rotation every ${ROTATION} s, ES256 and Ed25519 proofs at once`, () =>
      Promise.all([
        rotation(rotating.base, ROTATION, 'ES256'),
        rotation(rotating.base, ROTATION, 'Ed25519'),
      ]),
    )
  } finally {
    stopServer(server.child)
    stopServer(rotating.child)
  }
}

// Three replicas behind one public URL, each request to the next one: shared nonces, tokens
// and replay cache make the dance exactly as with one server.
async function replicas(mode, binary, args) {
  const shared = ['--token-secret', 'a5'.repeat(32), ...args]
  const first = await startServer(binary, shared)
  const others = await Promise.all(
    [0, 1].map(() => startServer(binary, ['--public-url', first.base, ...shared])),
  )
  const all = [first, ...others]
  try {
    // Room for the background tasks' first fetch of the Redis nonces.
    await sleep(300)
    await scenario(`[${mode}] three replicas, requests round-robin`, () =>
      grantAndResource(first.base, 'basic', 'ES256', roundRobin(all)),
    )
  } finally {
    for (const replica of all) stopServer(replica.child)
  }
}

async function main() {
  const binary = serverBinary()
  await scenarios('in-memory', binary, [])

  if (!redisServerInstalled()) {
    if (process.env.CI) {
      failed += 1
      console.log('not ok - redis-server is not installed, and CI is set: the Redis run is required')
    } else {
      console.log('SKIPPED: the Redis run (redis-server is not installed)')
    }
  } else {
    const redis = await startRedis()
    try {
      const args = ['--redis', redis.url]
      await scenarios('redis', binary, args)
      await replicas('redis', binary, args)
      await replicas('redis + derived', binary, [...args, '--derived-secret', '3c'.repeat(32)])
    } finally {
      const exited = new Promise((done) => redis.child.once('exit', done))
      stopServer(redis.child)
      await exited
    }
  }

  console.log(`${passed} passed, ${failed} failed`)
  process.exitCode = failed === 0 && passed > 0 ? 0 : 1
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const child of servers) stopServer(child)
    process.exit(1)
  })
}
process.on('exit', () => {
  for (const child of servers) stopServer(child)
})

main().catch((err) => {
  console.error(err?.stack ?? err)
  for (const child of servers) stopServer(child)
  process.exitCode = 1
})
