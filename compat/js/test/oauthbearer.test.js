'use strict'
// SASL OAUTHBEARER with kafkajs: ES256 JWTs checked against a file:// JWKS. One broker:
// PLAINTEXT (inter-broker, what the harness waits for; used here to create topics and read
// offsets) and OAUTH (SASL_PLAINTEXT, OAUTHBEARER only). The key pair and tokens are minted
// with node:crypto; a token signed by a second key (same kid) must be refused.
const { describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { readGroup, brokerFixture, makeKafka, createPartitioner } = require('../lib/common')
const { Broker, freePort } = require('../lib/broker')

const ISSUER = 'https://issuer.test'
const AUDIENCE = 'spate'
const KID = 'compat-js-key'

const b64url = b => Buffer.from(b).toString('base64url')

// A compact ES256 JWS over the claims, signed with privateKey, header kid.
function jwt (privateKey, claims, kid = KID) {
  const data = `${b64url(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid }))}.${b64url(JSON.stringify(claims))}`
  const sig = crypto.sign('sha256', Buffer.from(data), { key: privateKey, dsaEncoding: 'ieee-p1363' })
  return `${data}.${b64url(sig)}`
}

function claims (sub = 'alice') {
  const now = Math.floor(Date.now() / 1000)
  return { sub, aud: AUDIENCE, iss: ISSUER, iat: now, exp: now + 3600 }
}

const fx = brokerFixture()
const trusted = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
const stranger = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
let oauthAddr
let jwksDir

fx.before = async () => {
  if (fx.skip) return
  jwksDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spate-compat-js-jwks-'))
  const { x, y } = trusted.publicKey.export({ format: 'jwk' })
  const jwksPath = path.join(jwksDir, 'jwks.json')
  fs.writeFileSync(jwksPath, JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', kid: KID, alg: 'ES256', use: 'sig', x, y }] }))
  fx.broker = new Broker()
  try {
    await fx.broker.start(async addr => {
      oauthAddr = `127.0.0.1:${await freePort()}`
      return [
        'auto.create.topics.enable=false',
        `listeners=PLAINTEXT://${addr},OAUTH://${oauthAddr}`,
        'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,OAUTH:SASL_PLAINTEXT',
        'inter.broker.listener.name=PLAINTEXT',
        'listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER',
        `sasl.oauthbearer.jwks.endpoint.url=file://${jwksPath}`,
        `sasl.oauthbearer.expected.audience=${AUDIENCE}`,
        `sasl.oauthbearer.expected.issuer=${ISSUER}`
      ]
    })
  } catch (e) {
    fx.failed = true
    throw e
  }
}
const afterBroker = fx.after
fx.after = async () => {
  await afterBroker()
  if (jwksDir) fs.rmSync(jwksDir, { recursive: true, force: true })
}

// kafkajs on the OAUTH listener; provider() is called for each login.
function oauth (provider, extra = {}) {
  return makeKafka(fx.broker, {
    brokers: [oauthAddr],
    sasl: { mechanism: 'oauthbearer', oauthBearerProvider: provider },
    ...extra
  })
}

async function connected (client) {
  fx.clients.push(client)
  await client.connect()
  return client
}

// Topics are created and inspected over PLAINTEXT.
async function createTopic (topic) {
  const admin = await fx.admin()
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true }), true)
}

async function highWatermark (topic) {
  const admin = await fx.admin()
  const offsets = await admin.fetchTopicOffsets(topic)
  return offsets.map(o => Number(o.high)).reduce((a, b) => a + b, 0)
}

// Reads n records of topic through a consumer group, in order; fails after 30 s.
async function consume (kafka, topic, n) {
  const consumer = await connected(kafka.consumer({ groupId: `g-${topic}`, maxWaitTimeInMs: 500 }))
  return readGroup(consumer, topic, n)
}

const values = n => Array.from({ length: n }, (_, i) => `v${i}`)

describe('kafkajs SASL OAUTHBEARER', () => {
  before(fx.before)
  after(fx.after)

  fx.test('produce + consume 20 records with a valid ES256 token', async () => {
    const topic = 'oauth-valid'
    await createTopic(topic)
    let calls = 0
    const kafka = oauth(async () => { calls++; return { value: jwt(trusted.privateKey, claims()) } })
    const producer = await connected(kafka.producer({ createPartitioner, allowAutoTopicCreation: false, idempotent: true }))
    await producer.send({ topic, acks: -1, messages: values(20).map((value, i) => ({ key: `k${i}`, value })) })
    assert.deepEqual(await consume(kafka, topic, 20), values(20))
    assert.ok(calls >= 1, 'oauthBearerProvider was never called')
    assert.equal(await highWatermark(topic), 20)
  })

  fx.test('a token signed by another key (same kid) is refused: kafkajs send fails with a closed connection, nothing is produced', async () => {
    const topic = 'oauth-forged'
    await createTopic(topic)
    const kafka = oauth(async () => ({ value: jwt(stranger.privateKey, claims('mallory')) }), { retry: { retries: 0 } })
    const producer = kafka.producer({ createPartitioner, allowAutoTopicCreation: false })
    fx.clients.push(producer)
    // The broker answers the bad token as Apache Kafka does (RFC 7628 section 3.2.2):
    // SaslAuthenticate with error_code 0 and the challenge {"status":"invalid_token",...}, then
    // waits for the client's %x01 to fail the exchange with SASL_AUTHENTICATION_FAILED. kafkajs
    // 2.2.4 takes any SaslAuthenticate response for success (its OAUTHBEARER response decoder
    // returns true), so connect() resolves; its next request (Metadata) makes the broker close the
    // connection. kafkajs therefore surfaces a closed connection on send, never a
    // KafkaJSSASLAuthenticationError.
    await producer.connect()
    const err = await producer.send({ topic, acks: -1, messages: values(20).map(value => ({ value })) }).then(() => null, e => e)
    assert.ok(err, 'send with a forged token succeeded')
    assert.equal(err.name, 'KafkaJSNumberOfRetriesExceeded', `${err.name}: ${err.message}`)
    assert.equal(err.message, 'Closed connection')
    const cause = err.cause || {}
    assert.equal(cause.name, 'KafkaJSConnectionClosedError', `${cause.name}: ${cause.message}`)
    // The broker did refuse the token, for its signature.
    assert.match(fx.broker.logTail(400), /OAUTHBEARER token refused: invalid token: InvalidSignature/)
    assert.equal(await highWatermark(topic), 0)
  })
})
