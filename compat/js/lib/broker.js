'use strict'
// Starts/stops/restarts the spate-broker binary for the compat tests.
//
// Binary: $SPATE_BROKER_BIN, else ../../target/debug/spate-broker relative to
// this package (compat/js). Each broker gets a free 127.0.0.1 port and a fresh
// temp data dir; restart keeps both. Readiness = the port accepts TCP, polled
// with a deadline. SPATE_COMPAT_DEBUG=1 streams the broker's stderr.

const fs = require('node:fs')
const os = require('node:os')
const net = require('node:net')
const path = require('node:path')
const { spawn } = require('node:child_process')

const START_DEADLINE_MS = 30000
const STOP_DEADLINE_MS = 30000
const debug = !!process.env.SPATE_COMPAT_DEBUG

function brokerBin () {
  return path.resolve(process.env.SPATE_BROKER_BIN || path.join(__dirname, '..', '..', '..', 'target', 'debug', 'spate-broker'))
}

// Returns a skip reason if the binary is missing, else null.
function missingBinaryReason () {
  const bin = brokerBin()
  try {
    fs.accessSync(bin, fs.constants.X_OK)
    if (fs.statSync(bin).isDirectory()) throw new Error('is a directory')
    return null
  } catch (e) {
    return `spate-broker binary not found/executable at ${bin} (set SPATE_BROKER_BIN or run \`cargo build -p spate-broker\`): ${e.message}`
  }
}

function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

function tryConnect (port, host) {
  return new Promise(resolve => {
    const sock = net.connect({ port, host })
    const done = ok => { sock.destroy(); resolve(ok) }
    sock.setTimeout(500, () => done(false))
    sock.once('connect', () => done(true))
    sock.once('error', () => done(false))
  })
}

class Broker {
  constructor () {
    this.bin = brokerBin()
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spate-compat-js-data-'))
    this.logPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'spate-compat-js-log-')), 'broker.log')
    this.host = '127.0.0.1'
    this.port = 0
    this.extra = []
    this.listen = true // pass --listen (false when a listeners= setting names the address)
    this.proc = null
    this.exit = null // {code, signal} of the last process once it exited
    this.exited = null // promise resolved on exit of the current process
  }

  get addr () { return `${this.host}:${this.port}` }

  // Start on a free port; retries with another port if the process dies early.
  // `sets` are --set key=value settings, or an async function of the address that returns
  // them: a `listeners=` setting then replaces --listen and must name PLAINTEXT://addr (the
  // address waited for). `args` are extra command-line arguments (e.g. --add-scram).
  async start (sets = [], args = []) {
    let lastErr
    for (let attempt = 0; attempt < 3; attempt++) {
      this.port = await freePort()
      const resolved = typeof sets === 'function' ? await sets(this.addr) : sets
      this.listen = !resolved.some(s => s.startsWith('listeners='))
      this.extra = [...resolved.flatMap(s => ['--set', s]), ...args]
      try {
        await this._spawn()
        return this
      } catch (e) {
        lastErr = e
        if (this.proc && this.exit === null) break // running but not listening
      }
    }
    await this.kill()
    throw lastErr
  }

  async _spawn () {
    const args = [...(this.listen ? ['--listen', this.addr] : []), '--data-dir', this.dir, ...this.extra]
    fs.appendFileSync(this.logPath, `===== ${new Date().toISOString()} start: ${this.bin} ${args.join(' ')}\n`)
    const log = fs.openSync(this.logPath, 'a')
    // detached: own process group, so kill() can take down anything the broker spawned.
    const proc = spawn(this.bin, args, { detached: true, stdio: ['ignore', debug ? 'pipe' : log, debug ? 'pipe' : log] })
    if (debug) {
      for (const s of [proc.stdout, proc.stderr]) {
        s.on('data', d => {
          process.stderr.write(d)
          try { fs.appendFileSync(this.logPath, d) } catch (_) {} // log dir may be gone after cleanup
        })
      }
    }
    this.proc = proc
    this.exit = null
    this.exited = new Promise(resolve => {
      proc.once('exit', (code, signal) => { this.exit = { code, signal }; resolve(this.exit) })
      proc.once('error', err => { this.exit = { code: null, signal: null, err }; resolve(this.exit) })
    })
    this.exited.then(() => fs.closeSync(log))
    const deadline = Date.now() + START_DEADLINE_MS
    for (;;) {
      if (this.exit) {
        throw new Error(`broker exited before accepting connections on ${this.addr} (${JSON.stringify(this.exit)}); log tail:\n${this.logTail(40)}`)
      }
      if (await tryConnect(this.port, this.host)) return
      if (Date.now() > deadline) {
        throw new Error(`broker not accepting connections on ${this.addr} after ${START_DEADLINE_MS} ms; log tail:\n${this.logTail(40)}`)
      }
      await sleep(20)
    }
  }

  // SIGTERM and wait; BROKER.md: exits 0. Returns the exit status.
  async stop () {
    if (!this.proc || this.exit) throw new Error('stop: broker is not running')
    this.proc.kill('SIGTERM')
    let timer
    const timeout = new Promise(resolve => { timer = setTimeout(() => resolve('timeout'), STOP_DEADLINE_MS) })
    const res = await Promise.race([this.exited, timeout])
    clearTimeout(timer)
    if (res === 'timeout') {
      await this.kill()
      throw new Error(`broker did not exit within ${STOP_DEADLINE_MS} ms of SIGTERM (killed it)`)
    }
    if (res.code !== 0) {
      throw new Error(`broker exited uncleanly after SIGTERM: ${JSON.stringify(res)} (BROKER.md: SIGTERM exits 0); log tail:\n${this.logTail(30)}`)
    }
    return res
  }

  async restart () {
    await this.stop()
    await this._spawn()
  }

  async kill () {
    if (this.proc && !this.exit) {
      try { process.kill(-this.proc.pid, 'SIGKILL') } catch (_) { this.proc.kill('SIGKILL') }
      let timer
      await Promise.race([this.exited, new Promise(resolve => { timer = setTimeout(resolve, 10000) })])
      clearTimeout(timer)
    }
  }

  // Kill the process and remove the temp dirs.
  async cleanup (failed) {
    await this.kill()
    if (failed) process.stderr.write(`---- broker log ${this.logPath} (tail) ----\n${this.logTail(80)}\n`)
    fs.rmSync(this.dir, { recursive: true, force: true })
    if (!failed) fs.rmSync(path.dirname(this.logPath), { recursive: true, force: true })
  }

  logTail (n) {
    try {
      return fs.readFileSync(this.logPath, 'utf8').split('\n').slice(-n).join('\n')
    } catch (e) {
      return `(no log: ${e.message})`
    }
  }
}

// Raw ApiVersions v0 over a plain socket. Returns Map(apiKey -> {min, max}).
function apiVersions (host, port, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const clientId = Buffer.from('spate-compat-js-raw')
    const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length)
    let o = 0
    o = body.writeInt16BE(18, o) // api_key ApiVersions
    o = body.writeInt16BE(0, o) // api_version 0
    o = body.writeInt32BE(4242, o) // correlation id
    o = body.writeInt16BE(clientId.length, o)
    clientId.copy(body, o)
    const size = Buffer.alloc(4)
    size.writeInt32BE(body.length)

    let buf = Buffer.alloc(0)
    const sock = net.connect({ host, port })
    const fail = err => { sock.destroy(); reject(err) }
    sock.setTimeout(timeoutMs, () => fail(new Error(`ApiVersions v0: no complete response within ${timeoutMs} ms (got ${buf.length} bytes)`)))
    sock.once('error', fail)
    sock.once('connect', () => sock.write(Buffer.concat([size, body])))
    sock.on('data', d => {
      buf = Buffer.concat([buf, d])
      if (buf.length < 4) return
      const n = buf.readInt32BE(0)
      if (buf.length < 4 + n) return
      sock.destroy()
      try {
        let p = 4
        const corr = buf.readInt32BE(p); p += 4
        if (corr !== 4242) throw new Error(`ApiVersions v0: correlation id ${corr}, want 4242`)
        const err = buf.readInt16BE(p); p += 2
        if (err !== 0) throw new Error(`ApiVersions v0: error code ${err}`)
        const count = buf.readInt32BE(p); p += 4
        const out = new Map()
        for (let i = 0; i < count; i++) {
          const key = buf.readInt16BE(p)
          const min = buf.readInt16BE(p + 2)
          const max = buf.readInt16BE(p + 4)
          p += 6
          out.set(key, { min, max })
        }
        resolve(out)
      } catch (e) {
        reject(e)
      }
    })
    sock.once('close', () => {
      if (buf.length < 4 || buf.length < 4 + buf.readInt32BE(0)) fail(new Error(`ApiVersions v0: connection closed after ${buf.length} bytes`))
    })
  })
}

// Poll fn until it returns truthy / stops throwing, or fail after ms.
async function eventually (ms, what, fn) {
  const deadline = Date.now() + ms
  let last
  for (;;) {
    try {
      const v = await fn()
      if (v !== false) return v
      last = new Error('condition false')
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) throw new Error(`${what}: still failing after ${ms} ms: ${last && last.message}`)
    await sleep(50)
  }
}

module.exports = { Broker, brokerBin, missingBinaryReason, freePort, apiVersions, eventually, sleep }
