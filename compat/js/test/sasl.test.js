'use strict'
// SASL listeners with kafkajs: SCRAM-SHA-512 over SASL_SSL (the test CA from compat/certs.sh),
// PLAIN over SASL_PLAINTEXT, failed logins (KafkaJSSASLAuthenticationError, alike for a wrong
// password and an unknown user), and KIP-368 re-authentication on a listener whose sessions
// last 2 s. One broker: PLAINTEXT (inter-broker, what the harness waits for), SASL_PLAINTEXT,
// SASL_SSL and REAUTH (SASL_SSL, connections.max.reauth.ms=2000); user admin from --add-scram.
const { describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { logLevel } = require('kafkajs')
const { readGroup, brokerFixture, makeKafka, createPartitioner } = require('../lib/common')
const { Broker, freePort } = require('../lib/broker')

const ADMIN = { username: 'admin', password: 'admin-secret' }
const SCRAM_FAILURE = 'Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512'
const PLAIN_FAILURE = 'Authentication failed: Invalid username or password'

function hasOpenssl () {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch (_) {
    return false
  }
}

const fx = brokerFixture()
if (!fx.skip && !hasOpenssl()) fx.skip = 'openssl CLI not installed'
const listeners = {}
let pki

fx.before = async () => {
  if (fx.skip) return
  pki = fs.mkdtempSync(path.join(os.tmpdir(), 'spate-compat-js-pki-'))
  execFileSync('bash', [path.join(__dirname, '..', '..', 'certs.sh'), pki], { stdio: 'inherit' })
  fx.broker = new Broker()
  try {
    await fx.broker.start(async addr => {
      for (const name of ['SASL_PLAINTEXT', 'SASL_SSL', 'REAUTH']) listeners[name] = `127.0.0.1:${await freePort()}`
      return [
        'auto.create.topics.enable=false',
        `listeners=PLAINTEXT://${addr},` + Object.entries(listeners).map(([n, a]) => `${n}://${a}`).join(','),
        'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,REAUTH:SASL_SSL',
        'inter.broker.listener.name=PLAINTEXT',
        `ssl.keystore.location=${path.join(pki, 'broker.pem')}`,
        `ssl.truststore.location=${path.join(pki, 'ca.pem')}`,
        'listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
        'listener.name.reauth.connections.max.reauth.ms=2000'
      ]
    }, ['--add-scram', `SCRAM-SHA-512=[name=${ADMIN.username},password=${ADMIN.password}]`])
  } catch (e) {
    fx.failed = true
    throw e
  }
}
const afterBroker = fx.after
fx.after = async () => {
  await afterBroker()
  if (pki) fs.rmSync(pki, { recursive: true, force: true })
}

// kafkajs settings for a listener: SASL login and, on the TLS listeners, the test CA.
function login (listener, mechanism, { username, password }, extra = {}) {
  const tls = listener !== 'SASL_PLAINTEXT'
  return makeKafka(fx.broker, {
    brokers: [listeners[listener]],
    sasl: { mechanism, username, password },
    ssl: tls ? { ca: [fs.readFileSync(path.join(pki, 'ca.pem'))] } : false,
    ...extra
  })
}

async function connected (client) {
  fx.clients.push(client)
  await client.connect()
  return client
}

async function createTopic (topic) {
  const admin = await connected(login('SASL_SSL', 'scram-sha-512', ADMIN).admin())
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true }), true)
}

// Reads n records of topic through a consumer group, in order; fails after 30 s.
async function consume (kafka, topic, n) {
  const consumer = await connected(kafka.consumer({ groupId: `g-${topic}`, maxWaitTimeInMs: 500 }))
  return readGroup(consumer, topic, n)
}

const values = n => Array.from({ length: n }, (_, i) => `v${i}`)

describe('kafkajs SASL', () => {
  before(fx.before)
  after(fx.after)

  for (const [listener, mechanism] of [['SASL_SSL', 'scram-sha-512'], ['SASL_PLAINTEXT', 'plain'], ['SASL_PLAINTEXT', 'scram-sha-512']]) {
    fx.test(`produce + consume over ${listener} with ${mechanism}`, async () => {
      const topic = `sasl-${listener}-${mechanism}`.toLowerCase()
      await createTopic(topic)
      const kafka = login(listener, mechanism, ADMIN)
      const producer = await connected(kafka.producer({ createPartitioner, allowAutoTopicCreation: false, idempotent: true }))
      await producer.send({ topic, acks: -1, messages: values(100).map((value, i) => ({ key: `k${i}`, value })) })
      assert.deepEqual(await consume(kafka, topic, 100), values(100))
    })
  }

  for (const [listener, mechanism, message] of [['SASL_SSL', 'scram-sha-512', SCRAM_FAILURE], ['SASL_PLAINTEXT', 'plain', PLAIN_FAILURE]]) {
    fx.test(`${listener} ${mechanism}: a wrong password and an unknown user are refused alike`, async () => {
      const refusal = async who => {
        const admin = login(listener, mechanism, who, { retry: { retries: 0 } }).admin()
        fx.clients.push(admin)
        const err = await admin.connect().then(() => null, e => e)
        assert.ok(err, `login as ${who.username}/${who.password} worked`)
        assert.equal(err.name, 'KafkaJSSASLAuthenticationError', `${err.name}: ${err.message}`)
        assert.ok(err.message.endsWith(`: ${message}`), `message: ${err.message}`)
        return err.message
      }
      const wrong = await refusal({ username: ADMIN.username, password: 'not-the-password' })
      const unknown = await refusal({ username: 'nobody', password: ADMIN.password })
      assert.equal(unknown, wrong)
      await connected(login(listener, mechanism, ADMIN).admin())
    })
  }

  fx.test('re-authentication: a producer keeps sending for 5 s over 2 s sessions', async () => {
    const topic = 'sasl-reauth'
    await createTopic(topic)
    // kafkajs re-authenticates before a request once the session is within the threshold of
    // its end (default 10 s, longer than these sessions).
    let logins = 0
    const logCreator = () => ({ log }) => { if (/^SASL SCRAM SHA512 authentication successful/.test(log.message)) logins++ }
    const kafka = login('REAUTH', 'scram-sha-512', ADMIN, { reauthenticationThreshold: 500, logLevel: logLevel.DEBUG, logCreator })
    const producer = await connected(kafka.producer({ createPartitioner, allowAutoTopicCreation: false, idempotent: true }))
    const end = Date.now() + 5000
    let sent = 0
    while (Date.now() < end) {
      const messages = Array.from({ length: 10 }, () => ({ value: `v${sent++}` }))
      await producer.send({ topic, acks: -1, messages })
    }
    // The producer's one connection logs in, then re-authenticates every ~1.5 s.
    assert.ok(logins >= 3, `${logins} SCRAM logins while producing for 5 s, want >= 3`)
    assert.deepEqual(await consume(kafka, topic, sent), values(sent))
  })
})
