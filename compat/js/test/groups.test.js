'use strict'
// Consumer groups (classic protocol) through kafkajs 2.2.4: assignment split
// for 1/2/4/5 members, leave -> immediate rebalance, commit + resume after a
// consumer restart and after a broker restart, admin fetchOffsets /
// describeGroups / listGroups / deleteGroups, and a no-duplicates checker
// across member joins/leaves (autoCommit off, commit in eachBatch).
//
// Each test starts its own broker with group.initial.rebalance.delay.ms=0.
// kafkajs only speaks the eager protocol (RoundRobin assigner by default):
// a member's current assignment is the one in its latest GROUP_JOIN event.
const { describe, test } = require('node:test')
const assert = require('node:assert/strict')
const { AssignerProtocol } = require('kafkajs')
const { makeKafka, createPartitioner } = require('../lib/common')
const { spawn } = require('node:child_process')
const { Broker, missingBinaryReason, eventually } = require('../lib/broker')

const PARTS = 4
const SESSION_MS = 6000 // = broker group.min.session.timeout.ms default
const HEARTBEAT_MS = 500
const REBALANCE_MS = 10000
const CONVERGE_MS = 30000
const skip = missingBinaryReason() || false

// Runs fn with a fresh broker and a topic of PARTS partitions; disconnects
// every client and kills the broker afterwards (log tail printed on failure).
function groupTest (name, fn) {
  test(name, { skip }, async t => {
    const broker = new Broker()
    const clients = []
    let failed = false
    await broker.start(['group.initial.rebalance.delay.ms=0'])
    try {
      const kafka = () => makeKafka(broker)
      const ctx = {
        broker,
        log: msg => t.diagnostic(msg),
        topic: 'compat-js-' + name.replace(/[^a-zA-Z0-9]+/g, '-').toLowerCase().slice(0, 60),
        track: c => { clients.push(c); return c },
        kafka,
        admin: async () => { const a = ctx.track(kafka().admin()); await a.connect(); return a },
        producer: async () => {
          const p = ctx.track(kafka().producer({ createPartitioner, allowAutoTopicCreation: false }))
          await p.connect()
          return p
        },
        member: (name, groupId, runOpts, consumerOpts) => ctx.track(new Member(ctx, name, groupId, runOpts, consumerOpts))
      }
      const admin = await ctx.admin()
      assert.equal(await admin.createTopics({ topics: [{ topic: ctx.topic, numPartitions: PARTS, replicationFactor: 1 }], waitForLeaders: true }), true)
      await fn(ctx)
    } catch (e) {
      failed = true
      throw e
    } finally {
      for (const c of clients.reverse()) {
        try { await c.disconnect() } catch (_) {}
      }
      await broker.cleanup(failed)
    }
  })
}

// One kafkajs consumer in a group; tracks its GROUP_JOIN assignments.
class Member {
  constructor (ctx, name, groupId, runOpts = {}, consumerOpts = {}) {
    this.name = name
    this.topic = ctx.topic
    this.groupId = groupId
    this.assigned = null // partitions from the latest GROUP_JOIN (null before the first)
    this.memberId = null
    this.history = []
    this.crash = null
    this.consumer = ctx.kafka().consumer({
      groupId,
      sessionTimeout: SESSION_MS,
      rebalanceTimeout: REBALANCE_MS,
      heartbeatInterval: HEARTBEAT_MS,
      maxWaitTimeInMs: 200,
      retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 10 },
      ...consumerOpts
    })
    const ev = this.consumer.events
    this.consumer.on(ev.GROUP_JOIN, ({ payload }) => {
      this.memberId = payload.memberId
      this.assigned = [...(payload.memberAssignment[this.topic] || [])].sort((a, b) => a - b)
      this.history.push(`${new Date().toISOString().slice(11, 23)} join ${JSON.stringify(this.assigned)}${payload.isLeader ? ' (leader)' : ''}`)
    })
    this.consumer.on(ev.REBALANCING, () => this.history.push(`${new Date().toISOString().slice(11, 23)} rebalancing`))
    this.consumer.on(ev.CRASH, ({ payload }) => {
      this.history.push(`${new Date().toISOString().slice(11, 23)} crash ${payload.error && payload.error.message} restart=${payload.restart}`)
      if (!payload.restart) this.crash = payload.error || new Error('crash')
    })
    this.runOpts = runOpts
  }

  async start () {
    await this.consumer.connect()
    await this.consumer.subscribe({ topics: [this.topic], fromBeginning: true })
    const run = { ...this.runOpts }
    if (!run.eachBatch && !run.eachMessage) run.eachMessage = async () => {}
    await this.consumer.run(run)
    return this
  }

  async disconnect () {
    if (this.gone) return
    this.gone = true
    await this.consumer.disconnect()
  }
}

function balancedSizes (n) {
  return Array.from({ length: n }, (_, i) => Math.floor(PARTS / n) + (i < PARTS % n ? 1 : 0))
}

const decodeAssignment = (buf, topic) => {
  if (!buf || buf.length === 0) return []
  const a = AssignerProtocol.MemberAssignment.decode(buf)
  return a ? [...(a.assignment[topic] || [])].sort((x, y) => x - y) : []
}

// Waits until the members' own view (latest GROUP_JOIN) is a balanced,
// disjoint cover of the partitions and DescribeGroups agrees (Stable, same
// member ids, same assignment per member).
async function waitAssignment (admin, members, what) {
  const want = balancedSizes(members.length)
  const groupId = members[0].groupId
  const topic = members[0].topic
  try {
    await eventually(CONVERGE_MS, what, async () => {
      const seen = new Map()
      for (const m of members) {
        if (m.crash) throw new Error(`${m.name} crashed: ${m.crash.message}`)
        if (m.assigned === null) throw new Error(`${m.name} has not joined`)
        for (const p of m.assigned) {
          if (seen.has(p)) throw new Error(`partition ${p} assigned to ${seen.get(p)} and ${m.name}`)
          seen.set(p, m.name)
        }
      }
      const sizes = members.map(m => m.assigned.length).sort((a, b) => b - a)
      const desc = members.map(m => `${m.name}=${JSON.stringify(m.assigned)}`).join(' ')
      if (seen.size !== PARTS || JSON.stringify(sizes) !== JSON.stringify(want)) {
        throw new Error(`client view ${desc}: sizes ${JSON.stringify(sizes)}, want ${JSON.stringify(want)}`)
      }
      const { groups: [g] } = await admin.describeGroups([groupId])
      if (g.errorCode !== 0 || g.state !== 'Stable' || g.protocolType !== 'consumer') {
        throw new Error(`describeGroups: state ${g.state} protocolType ${g.protocolType} errorCode ${g.errorCode}`)
      }
      if (g.members.length !== members.length) throw new Error(`describeGroups: ${g.members.length} members, want ${members.length}`)
      for (const m of members) {
        const dm = g.members.find(x => x.memberId === m.memberId)
        if (!dm) throw new Error(`describeGroups: ${m.name} (${m.memberId}) not a member`)
        const got = decodeAssignment(dm.memberAssignment, topic)
        if (JSON.stringify(got) !== JSON.stringify(m.assigned)) {
          throw new Error(`describeGroups: ${m.name} assigned ${JSON.stringify(got)}, client says ${JSON.stringify(m.assigned)}`)
        }
      }
      return true
    })
  } catch (e) {
    e.message += '\n' + members.map(m => `  ${m.name}: ${m.history.join('; ')}`).join('\n')
    throw e
  }
}

async function produceEach (producer, topic, n, prefix) {
  for (let p = 0; p < PARTS; p++) {
    const messages = Array.from({ length: n }, (_, i) => ({ partition: p, key: `${prefix}${p}-${i}`, value: `${prefix}${p}-${i}` }))
    await producer.send({ topic, acks: -1, messages })
  }
}

async function committed (admin, groupId, topic) {
  const res = await admin.fetchOffsets({ groupId, topics: [topic] })
  assert.equal(res.length, 1)
  assert.equal(res[0].topic, topic)
  const out = {}
  for (const { partition, offset } of res[0].partitions) out[partition] = offset
  return out
}

// Consumes with eachMessage until `count` records arrived; returns partition -> offsets.
async function consumeCount (ctx, name, groupId, count, extra = {}) {
  const got = {}
  let n = 0
  let resolve
  const enough = new Promise(r => { resolve = r })
  const m = ctx.member(name, groupId, {
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      (got[partition] = got[partition] || []).push(Number(message.offset))
      if (++n >= count) resolve()
    },
    ...extra
  })
  await m.start()
  let timer
  await Promise.race([enough, new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name}: consumed ${n} of ${count} records within 30 s; history: ${m.history.join('; ')}`)), 30000)
  })])
  clearTimeout(timer)
  return { m, got, n: () => n }
}

const range = (a, b) => Array.from({ length: b - a }, (_, i) => a + i)

describe('kafkajs consumer groups', () => {
  groupTest('split: 1, 2, 4 and 5 members', async ctx => {
    const admin = await ctx.admin()
    const g = 'js-split'
    const ms = []
    const add = async () => { ms.push(await ctx.member(`m${ms.length + 1}`, g).start()) }
    await add()
    await waitAssignment(admin, ms, '1 member')
    assert.deepEqual(ms[0].assigned, [0, 1, 2, 3])
    await add()
    await waitAssignment(admin, ms, '2 members')
    await add()
    await add()
    await waitAssignment(admin, ms, '4 members')
    await add()
    await waitAssignment(admin, ms, '5 members (one idle)')
  })

  groupTest('leave: the remaining member gets all partitions at once', async ctx => {
    const admin = await ctx.admin()
    const g = 'js-leave'
    const m1 = await ctx.member('m1', g).start()
    const m2 = await ctx.member('m2', g).start()
    await waitAssignment(admin, [m1, m2], '2 members')
    const t0 = Date.now()
    await m2.disconnect() // LeaveGroup
    await eventually(SESSION_MS / 2, 'm1 owns all partitions after m2 left (well before a 6 s session timeout)', () => {
      assert.deepEqual(m1.assigned, [0, 1, 2, 3])
      return true
    })
    const took = Date.now() - t0
    ctx.log(`m1 owned all partitions ${took} ms after m2's LeaveGroup`)
    assert.ok(took < SESSION_MS - 1000, `rebalance after LeaveGroup took ${took} ms`)
    await waitAssignment(admin, [m1], 'm1 alone')
  })

  // A member in a child process that is SIGKILLed sends no LeaveGroup: the
  // coordinator must expire it after its session timeout (6 s), not before.
  groupTest('killed member (SIGKILL) is removed after its session timeout', async ctx => {
    const admin = await ctx.admin()
    const g = 'js-killed'
    const m1 = await ctx.member('m1', g).start()
    await waitAssignment(admin, [m1], 'm1 alone')
    const script = `
      const { Kafka, logLevel } = require(${JSON.stringify(require.resolve('kafkajs'))})
      const [addr, groupId, topic] = process.argv.slice(1)
      const c = new Kafka({ clientId: 'spate-compat-js-child', brokers: [addr], logLevel: logLevel.NOTHING })
        .consumer({ groupId, sessionTimeout: ${SESSION_MS}, rebalanceTimeout: ${REBALANCE_MS}, heartbeatInterval: ${HEARTBEAT_MS}, maxWaitTimeInMs: 200 })
      c.on(c.events.GROUP_JOIN, ({ payload }) => console.log('JOIN ' + JSON.stringify(payload.memberAssignment[topic] || [])))
      c.connect().then(() => c.subscribe({ topics: [topic], fromBeginning: true })).then(() => c.run({ eachMessage: async () => {} }))
      setTimeout(() => process.exit(0), 120000)`
    const child = spawn(process.execPath, ['-e', script, ctx.broker.addr, g, ctx.topic], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', d => { out += d })
    const childExited = new Promise(resolve => child.once('exit', resolve))
    ctx.track({ disconnect: async () => { if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await childExited } } })
    await eventually(CONVERGE_MS, 'child joined: m1 owns 2 partitions, group Stable with 2 members', async () => {
      assert.equal(m1.assigned.length, 2, `m1 owns ${JSON.stringify(m1.assigned)}`)
      assert.match(out, /JOIN \[\d+,\d+\]/, 'child reported a 2-partition assignment')
      const { groups: [d] } = await admin.describeGroups([g])
      assert.equal(d.state, 'Stable')
      assert.equal(d.members.length, 2)
      return true
    })
    child.kill('SIGKILL')
    const killed = Date.now()
    await childExited
    await eventually(SESSION_MS + REBALANCE_MS + 5000, 'm1 owns all partitions after the child was SIGKILLed', () => {
      assert.deepEqual(m1.assigned, [0, 1, 2, 3])
      return true
    })
    const took = Date.now() - killed
    ctx.log(`partitions reassigned ${took} ms after SIGKILL (session timeout ${SESSION_MS} ms)`)
    assert.ok(took >= SESSION_MS - HEARTBEAT_MS - 1000, `killed member removed after ${took} ms, before its ${SESSION_MS} ms session timeout could expire`)
    await waitAssignment(admin, [m1], 'm1 alone after the kill')
  })

  groupTest('commit + resume after a consumer restart and a broker restart', async ctx => {
    const admin = await ctx.admin()
    const producer = await ctx.producer()
    const g = 'js-resume'
    await produceEach(producer, ctx.topic, 40, 'a')

    // A reads everything and commits 10, 20, 30, 40.
    const a = await consumeCount(ctx, 'A', g, 160)
    for (let p = 0; p < PARTS; p++) assert.deepEqual(a.got[p], range(0, 40), `A partition ${p}`)
    const want = { 0: '10', 1: '20', 2: '30', 3: '40' }
    await a.m.consumer.commitOffsets(Object.entries(want).map(([p, offset]) => ({ topic: ctx.topic, partition: Number(p), offset })))
    await a.m.disconnect()
    assert.deepEqual(await committed(admin, g, ctx.topic), want, 'fetchOffsets after A committed')

    // B (consumer restart) resumes at the commits; 5 more per partition.
    await produceEach(producer, ctx.topic, 5, 'b')
    const b = await consumeCount(ctx, 'B', g, 35 + 25 + 15 + 5)
    for (let p = 0; p < PARTS; p++) assert.deepEqual(b.got[p] || [], range(Number(want[p]), 45), `B partition ${p} resumes at the commit`)
    await b.m.consumer.commitOffsets(range(0, PARTS).map(p => ({ topic: ctx.topic, partition: p, offset: '45' })))
    await b.m.disconnect()
    const all45 = { 0: '45', 1: '45', 2: '45', 3: '45' }
    assert.deepEqual(await committed(admin, g, ctx.topic), all45, 'fetchOffsets after B committed')

    // Broker restart: commits survive, C resumes there.
    await ctx.broker.restart()
    await eventually(20000, 'fetchOffsets after broker restart', async () => {
      assert.deepEqual(await committed(admin, g, ctx.topic), all45)
      return true
    })
    await produceEach(producer, ctx.topic, 3, 'c')
    const c = await consumeCount(ctx, 'C', g, 12)
    for (let p = 0; p < PARTS; p++) assert.deepEqual(c.got[p], [45, 46, 47], `C partition ${p} after broker restart`)
  })

  groupTest('admin: listGroups, describeGroups, fetchOffsets, deleteGroups', async ctx => {
    const admin = await ctx.admin()
    const producer = await ctx.producer()
    const g = 'js-admin'
    await produceEach(producer, ctx.topic, 10, 'x')
    const m1 = await ctx.member('m1', g, { autoCommit: false }).start()
    const m2 = await ctx.member('m2', g, { autoCommit: false }).start()
    await waitAssignment(admin, [m1, m2], '2 members')
    const other = await ctx.member('o1', 'js-admin-other').start()
    await waitAssignment(admin, [other], 'other group')

    const { groups: listed } = await admin.listGroups()
    for (const id of [g, 'js-admin-other']) {
      const l = listed.find(x => x.groupId === id)
      assert.ok(l, `listGroups has ${id}: ${JSON.stringify(listed)}`)
      assert.equal(l.protocolType, 'consumer')
    }
    assert.ok(!listed.find(x => x.groupId === '__consumer_offsets'))

    const { groups: [d] } = await admin.describeGroups([g])
    assert.equal(d.groupId, g)
    assert.equal(d.errorCode, 0)
    assert.equal(d.state, 'Stable')
    assert.equal(d.protocolType, 'consumer')
    assert.equal(d.protocol, 'RoundRobinAssigner')
    assert.equal(d.members.length, 2)
    for (const dm of d.members) {
      assert.equal(dm.clientId, 'spate-compat-js')
      assert.ok(dm.clientHost, 'clientHost set')
      const meta = AssignerProtocol.MemberMetadata.decode(dm.memberMetadata)
      assert.deepEqual(meta.topics, [ctx.topic], 'member metadata = subscription')
    }
    const union = d.members.flatMap(dm => decodeAssignment(dm.memberAssignment, ctx.topic)).sort()
    assert.deepEqual(union, [0, 1, 2, 3])

    // Nothing committed yet: -1 everywhere.
    assert.deepEqual(await committed(admin, g, ctx.topic), { 0: '-1', 1: '-1', 2: '-1', 3: '-1' })
    await m1.consumer.commitOffsets([{ topic: ctx.topic, partition: m1.assigned[0], offset: '7' }])
    await m2.consumer.commitOffsets([{ topic: ctx.topic, partition: m2.assigned[0], offset: '3' }])
    const want = { 0: '-1', 1: '-1', 2: '-1', 3: '-1' }
    want[m1.assigned[0]] = '7'
    want[m2.assigned[0]] = '3'
    assert.deepEqual(await committed(admin, g, ctx.topic), want)

    // A group with members cannot be deleted.
    await assert.rejects(admin.deleteGroups([g]), e => {
      assert.equal(e.name, 'KafkaJSDeleteGroupsError', e.message)
      assert.equal(e.groups[0].groupId, g)
      assert.equal(e.groups[0].error.type, 'NON_EMPTY_GROUP')
      return true
    })

    await m1.disconnect()
    await m2.disconnect()
    await eventually(10000, 'group Empty after both left', async () => {
      const { groups: [e] } = await admin.describeGroups([g])
      assert.equal(e.state, 'Empty')
      assert.equal(e.members.length, 0)
      return true
    })
    // Empty group keeps its offsets.
    assert.deepEqual(await committed(admin, g, ctx.topic), want)
    const res = await admin.deleteGroups([g])
    assert.deepEqual(res.map(r => [r.groupId, r.errorCode]), [[g, 0]])
    const gone = async () => {
      const { groups } = await admin.listGroups()
      assert.ok(!groups.find(x => x.groupId === g), `deleted group still listed: ${JSON.stringify(groups)}`)
      assert.ok(groups.find(x => x.groupId === 'js-admin-other'), 'other group still listed')
      assert.deepEqual(await committed(admin, g, ctx.topic), { 0: '-1', 1: '-1', 2: '-1', 3: '-1' }, 'offsets of the deleted group')
      const { groups: [e] } = await admin.describeGroups([g])
      assert.equal(e.state, 'Dead')
      return true
    }
    await eventually(10000, 'deleted group gone', gone)
    await assert.rejects(admin.deleteGroups([g]), e => {
      assert.equal(e.groups[0].error.type, 'GROUP_ID_NOT_FOUND', e.message)
      return true
    })
    await other.disconnect()
    await ctx.broker.restart()
    await eventually(20000, 'deleted group still gone after broker restart', gone)
  })

  groupTest('no duplicates across member joins/leaves (autoCommit off, commit in eachBatch)', async ctx => {
    const admin = await ctx.admin()
    const producer = await ctx.producer()
    const g = 'js-once'
    const seen = new Map() // "p@offset" -> [member names]
    let processed = 0
    const bad = []
    const commitErrors = []

    // Producer: numbered records on every partition until stopped.
    const produced = new Array(PARTS).fill(0)
    let producing = true
    const prodLoop = (async () => {
      while (producing) {
        const messages = []
        for (let p = 0; p < PARTS; p++) {
          for (let k = 0; k < 2; k++) messages.push({ partition: p, value: `p${p}-${produced[p]++}` })
        }
        await producer.send({ topic: ctx.topic, acks: -1, messages })
        await new Promise(resolve => setTimeout(resolve, 10))
      }
    })()

    const runOpts = name => ({
      autoCommit: false,
      eachBatch: async ({ batch, resolveOffset, isRunning, isStale, commitOffsetsIfNecessary }) => {
        let last = null
        for (const msg of batch.messages) {
          if (!isRunning() || isStale()) break
          const key = `${batch.partition}@${msg.offset}`
          if (msg.value.toString() !== `p${batch.partition}-${msg.offset}`) bad.push(`${key} value ${msg.value}`)
          seen.set(key, [...(seen.get(key) || []), name])
          processed++
          resolveOffset(msg.offset)
          last = msg.offset
        }
        if (last !== null) {
          const offset = String(Number(last) + 1)
          try {
            // consumerGroup.commitOffsets directly: consumer.commitOffsets is a no-op
            // once disconnect() has started, which would lose the last batch's commit.
            await commitOffsetsIfNecessary({ topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset }] }] })
          } catch (e) {
            commitErrors.push(`${name} ${batch.partition}@${offset}: ${e.type || e.name} ${e.message}`)
            throw e
          }
        }
      }
    })
    const ms = []
    let next = 1
    const join = async () => { const name = `m${next++}`; ms.push(await ctx.member(name, g, runOpts(name)).start()) }
    const leave = async name => {
      const i = ms.findIndex(m => m.name === name)
      await ms[i].disconnect()
      ms.splice(i, 1)
    }
    const settle = async what => {
      await waitAssignment(admin, ms, what)
      const before = processed
      await eventually(15000, `${what}: consumption continues`, () => {
        if (processed < before + 100) {
          throw new Error(`processed ${processed - before} since the step (want 100); produced ${JSON.stringify(produced)}; commit errors ${JSON.stringify(commitErrors.slice(-3))}; ` +
            ms.map(m => `${m.name}: ${m.history.slice(-4).join('; ')}`).join(' | '))
        }
        return true
      })
    }

    try {
      await join(); await settle('m1')
      await join(); await settle('m1+m2')
      await join(); await settle('m1+m2+m3')
      await leave('m1'); await settle('m2+m3 after m1 left')
      await join(); await settle('m2+m3+m4')
      await leave('m2'); await leave('m3'); await settle('m4 alone')
    } finally {
      producing = false
      await prodLoop
    }
    const total = produced.reduce((a, b) => a + b, 0)
    await eventually(30000, 'all produced records consumed', () => {
      if (seen.size < total) throw new Error(`${seen.size} of ${total} distinct records consumed`)
      return true
    })
    await leave('m4')

    const problems = [...bad]
    for (let p = 0; p < PARTS; p++) {
      for (let o = 0; o < produced[p]; o++) {
        const who = seen.get(`${p}@${o}`) || []
        if (who.length !== 1) problems.push(`${p}@${o} processed ${who.length} times ${JSON.stringify(who)}`)
      }
    }
    assert.deepEqual(commitErrors, [], 'commits from eachBatch failed')
    assert.equal(seen.size, total, 'nothing beyond what was produced')
    assert.deepEqual(problems.slice(0, 30), [], `exactly-once violated (${problems.length} problems, ${processed} processed for ${total} produced)`)
    ctx.log(`${total} records produced, ${processed} processed`)
    const want = {}
    for (let p = 0; p < PARTS; p++) want[p] = String(produced[p])
    assert.deepEqual(await committed(admin, g, ctx.topic), want, 'final commits = end offsets')
  })
})
