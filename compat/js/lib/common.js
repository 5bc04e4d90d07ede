'use strict'
// Shared fixtures for the kafkajs compat tests.
const { test } = require('node:test')
const { Kafka, logLevel, Partitioners } = require('kafkajs')
const { Broker, missingBinaryReason } = require('./broker')
const { kafkaPartition } = require('./murmur2')

const debug = !!process.env.SPATE_COMPAT_DEBUG
if (debug && !BigInt.prototype.toJSON) {
  // kafkajs 2.2.4 bug: at logLevel DEBUG it JSON-logs decoded responses, and
  // DeleteRecords' lowWatermark is a BigInt -> "Do not know how to serialize a
  // BigInt" fails the request (with any broker, Apache Kafka included).
  // eslint-disable-next-line no-extend-native
  BigInt.prototype.toJSON = function () { return this.toString() }
}

function makeKafka (broker, extra = {}) {
  return new Kafka({
    clientId: 'spate-compat-js',
    brokers: [broker.addr],
    logLevel: debug ? logLevel.DEBUG : logLevel.NOTHING,
    connectionTimeout: 3000,
    requestTimeout: 15000,
    retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 8 },
    ...extra
  })
}

// Java-compatible murmur2 partitioner (kafkajs 2.x default; set explicitly so
// kafkajs does not warn and so LegacyPartitioner can never sneak in).
const createPartitioner = Partitioners.DefaultPartitioner

// A describe()-level fixture: starts one broker for the suite, tracks
// failures so the broker log tail is printed, cleans up at the end.
function brokerFixture () {
  const fx = { broker: null, failed: false, clients: [] }
  fx.skip = missingBinaryReason() || false
  fx.before = async () => {
    if (fx.skip) return
    fx.broker = new Broker()
    try {
      await fx.broker.start()
    } catch (e) {
      fx.failed = true
      throw e
    }
  }
  fx.after = async () => {
    for (const c of fx.clients.splice(0)) {
      try { await c.disconnect() } catch (_) {}
    }
    if (fx.broker) await fx.broker.cleanup(fx.failed)
  }
  // Wrap a test body so a failure marks the fixture failed.
  fx.run = fn => async t => {
    try {
      await fn(t)
    } catch (e) {
      fx.failed = true
      throw e
    }
  }
  // test() that skips (with the reason) when the broker binary is missing.
  fx.test = (name, fn) => test(name, { skip: fx.skip }, fx.run(fn))
  fx.kafka = extra => makeKafka(fx.broker, extra)
  fx.admin = async () => {
    const a = fx.kafka().admin()
    await a.connect()
    fx.clients.push(a)
    return a
  }
  fx.producer = async (opts = {}) => {
    const p = fx.kafka().producer({ createPartitioner, allowAutoTopicCreation: false, ...opts })
    await p.connect()
    fx.clients.push(p)
    return p
  }
  return fx
}

const NUM_RECORDS = 300
const NUM_PARTITIONS = 3
const BASE_TS = 1700000000000
const recordTs = i => BASE_TS + i * 1000

// 300 keyed messages with headers (incl. a duplicate key), explicit
// timestamps and some null values. Returned with expected partition.
function makeMessages (variant) {
  const out = []
  for (let i = 0; i < NUM_RECORDS; i++) {
    const key = `user-${i % 97}`
    const value = i % 50 === 7 ? null : `${variant} value ${i} ${'x'.repeat(i % 40)}`
    const headers = {
      idx: i % 3 === 0 ? [String(i), 'dup'] : String(i),
      variant,
      bin: Buffer.from([0, 1, 0xfe, 0xff, i & 0xff])
    }
    out.push({ i, key, value, headers, timestamp: String(recordTs(i)), partition: kafkaPartition(key, NUM_PARTITIONS) })
  }
  return out
}

// Group expected messages by partition in produce order.
function byPartition (msgs) {
  const m = new Map()
  for (let p = 0; p < NUM_PARTITIONS; p++) m.set(p, [])
  for (const msg of msgs) m.get(msg.partition).push(msg)
  return m
}

// Normalise kafkajs headers (Buffer | string | array thereof) to arrays of hex.
function normHeaders (h) {
  const out = {}
  for (const [k, v] of Object.entries(h || {})) {
    const vs = Array.isArray(v) ? v : [v]
    out[k] = vs.map(x => (x === null || x === undefined) ? null : Buffer.from(x).toString('hex'))
  }
  return out
}

// Reads n records of topic with an already connected consumer in a group, from the
// beginning, then disconnects it; fails after 30 s.
async function readGroup (consumer, topic, n) {
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  const got = []
  let timer
  try {
    await new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`consumed ${got.length} of ${n} records from ${topic} within 30 s`)), 30000)
      consumer.on(consumer.events.CRASH, e => {
        if (!e.payload || !e.payload.restart) reject(new Error(`consumer crashed: ${e.payload && e.payload.error}`))
      })
      consumer.run({
        eachMessage: async ({ message }) => {
          got.push(message.value.toString())
          if (got.length >= n) resolve()
        }
      }).catch(reject)
    })
  } finally {
    clearTimeout(timer)
    await consumer.disconnect()
  }
  return got
}

module.exports = {
  readGroup,
  makeKafka, brokerFixture, createPartitioner, makeMessages, byPartition, normHeaders,
  NUM_RECORDS, NUM_PARTITIONS, BASE_TS, recordTs
}
