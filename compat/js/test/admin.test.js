'use strict'
const { describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { ConfigResourceTypes } = require('kafkajs')
const { brokerFixture } = require('../lib/common')
const { apiVersions, eventually } = require('../lib/broker')

const fx = brokerFixture()

async function describeTopicConfigs (admin, topic) {
  const res = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }] })
  const r = res.resources.find(x => x.resourceName === topic)
  assert.ok(r, `DescribeConfigs response lacks ${topic}: ${JSON.stringify(res)}`)
  assert.equal(r.errorCode, 0, `DescribeConfigs(${topic}) error ${r.errorCode} ${r.errorMessage}`)
  return new Map(r.configEntries.map(e => [e.configName, e]))
}

async function offsetsOf (admin, topic) {
  const offs = await admin.fetchTopicOffsets(topic)
  return new Map(offs.map(o => [o.partition, { low: Number(o.low), high: Number(o.high) }]))
}

describe('kafkajs admin', () => {
  before(fx.before)
  after(fx.after)

  fx.test('ApiVersions v0 (raw socket) lists the APIs kafkajs admin/producer need', async () => {
    const versions = await apiVersions(fx.broker.host, fx.broker.port)
    const need = {
      0: 'Produce', 1: 'Fetch', 2: 'ListOffsets', 3: 'Metadata', 18: 'ApiVersions', 19: 'CreateTopics',
      20: 'DeleteTopics', 21: 'DeleteRecords', 22: 'InitProducerId', 32: 'DescribeConfigs', 33: 'AlterConfigs', 37: 'CreatePartitions'
    }
    const missing = Object.entries(need).filter(([k]) => !versions.has(Number(k))).map(([k, n]) => `${n}(${k})`)
    assert.deepEqual(missing, [], `ApiVersions lacks ${missing.join(', ')}; got keys ${[...versions.keys()].join(',')}`)
    for (const [k, { min, max }] of versions) assert.ok(min <= max && min >= 0, `api ${k}: min ${min} > max ${max}`)
  })

  fx.test('createTopics (3 partitions) + fetchTopicMetadata + describeCluster', async () => {
    const admin = await fx.admin()
    const topic = 'compat-js-admin-create'
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }], waitForLeaders: true }), true)
    // Creating it again: kafkajs maps TOPIC_ALREADY_EXISTS to `false`.
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }], waitForLeaders: false }), false)

    const cluster = await admin.describeCluster()
    assert.equal(cluster.brokers.length, 1, `brokers: ${JSON.stringify(cluster.brokers)}`)
    const [b] = cluster.brokers
    assert.equal(`${b.host}:${b.port}`, fx.broker.addr, 'Metadata must advertise the --listen address')
    assert.equal(cluster.controller, b.nodeId)

    const md = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(md.topics.length, 1)
    const parts = md.topics[0].partitions.slice().sort((a, c) => a.partitionId - c.partitionId)
    assert.deepEqual(parts.map(p => p.partitionId), [0, 1, 2])
    for (const p of parts) {
      assert.equal(p.partitionErrorCode, 0, `partition ${p.partitionId} error ${p.partitionErrorCode}`)
      assert.equal(p.leader, b.nodeId, `partition ${p.partitionId} leader`)
      assert.ok(p.replicas.includes(b.nodeId) && p.isr.includes(b.nodeId), `partition ${p.partitionId} replicas ${p.replicas} isr ${p.isr}`)
    }
    assert.ok((await admin.listTopics()).includes(topic))

    const offs = await offsetsOf(admin, topic)
    for (let p = 0; p < 3; p++) assert.deepEqual(offs.get(p), { low: 0, high: 0 }, `fresh partition ${p} offsets`)
  })

  fx.test('describeConfigs + alterConfigs', async () => {
    const admin = await fx.admin()
    const topic = 'compat-js-admin-configs'
    await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }] })

    await eventually(10000, 'describeConfigs shows creation config', async () => {
      const cfg = await describeTopicConfigs(admin, topic)
      assert.equal(cfg.get('retention.ms')?.configValue, '3600000')
      assert.equal(cfg.get('retention.ms').isDefault, false)
      assert.equal(cfg.get('cleanup.policy')?.configValue, 'delete')
      assert.equal(cfg.get('compression.type')?.configValue, 'producer')
      assert.equal(cfg.get('message.timestamp.type')?.configValue, 'CreateTime')
      assert.ok(cfg.has('segment.bytes') && cfg.has('max.message.bytes'), 'defaults are described too')
    })

    // kafkajs alterConfigs = legacy AlterConfigs (API 33): replaces the topic's whole override set.
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'max.message.bytes', value: '2097152' }] }]
    })
    await eventually(10000, 'describeConfigs shows altered config', async () => {
      const cfg = await describeTopicConfigs(admin, topic)
      assert.equal(cfg.get('max.message.bytes')?.configValue, '2097152')
      assert.equal(cfg.get('max.message.bytes').isDefault, false)
      const r = cfg.get('retention.ms')
      assert.ok(r && r.configValue !== '3600000', `retention.ms should be back to default after a full-replace AlterConfigs, got ${r && r.configValue}`)
    })

    await assert.rejects(
      admin.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'no.such.config', value: '1' }] }] }),
      'unknown config names must be rejected (Kafka: INVALID_CONFIG)'
    )
  })

  fx.test('createPartitions 3 -> 5', async () => {
    const admin = await fx.admin()
    const topic = 'compat-js-admin-partitions'
    await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }] })
    await admin.createPartitions({ topicPartitions: [{ topic, count: 5 }] })
    await eventually(10000, 'metadata shows 5 partitions', async () => {
      const md = await admin.fetchTopicMetadata({ topics: [topic] })
      assert.deepEqual(md.topics[0].partitions.map(p => p.partitionId).sort(), [0, 1, 2, 3, 4])
    })
    await eventually(10000, 'fetchTopicOffsets covers the 5 partitions', async () => {
      const offs = await offsetsOf(admin, topic) // Kafka: new partitions may briefly answer NOT_LEADER
      assert.equal(offs.size, 5)
      for (const [p, o] of offs) assert.deepEqual(o, { low: 0, high: 0 }, `partition ${p}`)
    })
    await assert.rejects(admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] }), 'shrinking must fail (INVALID_PARTITIONS)')
  })

  fx.test('fetchTopicOffsets + deleteTopicRecords', async () => {
    const admin = await fx.admin()
    const topic = 'compat-js-admin-deleterecords'
    await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }] })
    const producer = await fx.producer()
    const mk = (p, n) => Array.from({ length: n }, (_, i) => ({ partition: p, key: `k${i}`, value: `p${p}-v${i}` }))
    await producer.send({ topic, acks: -1, messages: [...mk(0, 10), ...mk(1, 5)] })

    let offs = await offsetsOf(admin, topic)
    assert.deepEqual(offs.get(0), { low: 0, high: 10 })
    assert.deepEqual(offs.get(1), { low: 0, high: 5 })

    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '4' }] })
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 1, offset: '-1' }] }) // -1 = up to the high watermark
    offs = await offsetsOf(admin, topic)
    assert.deepEqual(offs.get(0), { low: 4, high: 10 })
    assert.deepEqual(offs.get(1), { low: 5, high: 5 })
    assert.deepEqual(offs.get(2), { low: 0, high: 0 })

    await assert.rejects(admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '11' }] }), 'beyond the high watermark: OFFSET_OUT_OF_RANGE')

    // Survives a restart (log start offset is persisted).
    await fx.broker.restart()
    const admin2 = await fx.admin()
    await eventually(20000, 'offsets after restart', async () => {
      const o = await offsetsOf(admin2, topic)
      assert.deepEqual(o.get(0), { low: 4, high: 10 })
      assert.deepEqual(o.get(1), { low: 5, high: 5 })
    })
  })

  fx.test('deleteTopics', async () => {
    const admin = await fx.admin()
    const gone = 'compat-js-admin-delete-me'
    const kept = 'compat-js-admin-keep-me'
    await admin.createTopics({ topics: [{ topic: gone, numPartitions: 3, replicationFactor: 1 }, { topic: kept, numPartitions: 1, replicationFactor: 1 }] })
    const producer = await fx.producer()
    await producer.send({ topic: gone, acks: -1, messages: [{ partition: 0, value: 'a' }, { partition: 0, value: 'b' }] })

    await admin.deleteTopics({ topics: [gone], timeout: 10000 })
    await eventually(15000, 'deleted topic disappears', async () => {
      const topics = await admin.listTopics()
      assert.ok(!topics.includes(gone), `listTopics still has ${gone}`)
      assert.ok(topics.includes(kept), `listTopics lost ${kept}`)
    })
    await assert.rejects(admin.fetchTopicMetadata({ topics: [gone] }), /does not host this topic-partition|UNKNOWN_TOPIC_OR_PARTITION/i)

    // Recreate the name: new empty topic.
    await eventually(15000, 'recreate deleted topic name', async () => {
      assert.equal(await admin.createTopics({ topics: [{ topic: gone, numPartitions: 1, replicationFactor: 1 }] }), true)
    })
    await eventually(10000, 'recreated topic is empty with 1 partition', async () => {
      const offs = await offsetsOf(admin, gone)
      assert.equal(offs.size, 1)
      assert.deepEqual(offs.get(0), { low: 0, high: 0 })
    })
  })
})
