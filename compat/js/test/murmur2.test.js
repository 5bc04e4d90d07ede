'use strict'
// Pins the partitioning expectation the other tests rely on: Kafka's murmur2
// (our independent port, checked against Kafka's UtilsTest vectors) equals
// kafkajs's DefaultPartitioner for keyed messages.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { Partitioners } = require('kafkajs')
const { murmur2, kafkaPartition } = require('../lib/murmur2')

test('murmur2 matches Kafka UtilsTest vectors', () => {
  const vectors = {
    21: -973932308,
    foobar: -790332482,
    'a-little-bit-long-string': -985981536,
    'a-little-bit-longer-string': -1486304829,
    lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8: -58897971,
    abc: 479470107
  }
  for (const [k, want] of Object.entries(vectors)) assert.equal(murmur2(k), want, `murmur2(${k})`)
})

test('kafkajs DefaultPartitioner == toPositive(murmur2(key)) % n', () => {
  const partitioner = Partitioners.DefaultPartitioner()
  for (const n of [1, 3, 5, 7]) {
    const partitionMetadata = Array.from({ length: n }, (_, i) => ({ partitionId: i, leader: 0 }))
    for (let i = 0; i < 500; i++) {
      const key = `user-${i}`
      const got = partitioner({ topic: 't', partitionMetadata, message: { key } })
      assert.equal(got, kafkaPartition(key, n), `key ${key} n=${n}`)
    }
  }
})

test('kafkajs LegacyPartitioner is NOT Kafka-compatible (so we must not use it)', () => {
  const legacy = Partitioners.LegacyPartitioner()
  const partitionMetadata = Array.from({ length: 7 }, (_, i) => ({ partitionId: i, leader: 0 }))
  let differ = 0
  for (let i = 0; i < 500; i++) {
    const key = `user-${i}`
    if (legacy({ topic: 't', partitionMetadata, message: { key } }) !== kafkaPartition(key, 7)) differ++
  }
  assert.ok(differ > 0, 'LegacyPartitioner unexpectedly matched murmur2 for all keys')
})
