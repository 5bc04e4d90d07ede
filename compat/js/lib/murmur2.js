'use strict'
// Independent port of org.apache.kafka.common.utils.Utils#murmur2 and the
// Java producer's keyed partition choice: toPositive(murmur2(key)) % n.

function murmur2 (data) {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(String(data))
  const seed = 0x9747b28c
  const m = 0x5bd1e995
  const r = 24
  const length = buf.length
  let h = (seed ^ length) | 0
  const n4 = length >> 2
  for (let i = 0; i < n4; i++) {
    const i4 = i * 4
    let k = (buf[i4] & 0xff) | ((buf[i4 + 1] & 0xff) << 8) | ((buf[i4 + 2] & 0xff) << 16) | ((buf[i4 + 3] & 0xff) << 24)
    k = Math.imul(k, m)
    k ^= k >>> r
    k = Math.imul(k, m)
    h = Math.imul(h, m)
    h ^= k
  }
  const rem = length & 3
  const base = n4 * 4
  if (rem === 3) h ^= (buf[base + 2] & 0xff) << 16
  if (rem >= 2) h ^= (buf[base + 1] & 0xff) << 8
  if (rem >= 1) {
    h ^= buf[base] & 0xff
    h = Math.imul(h, m)
  }
  h ^= h >>> 13
  h = Math.imul(h, m)
  h ^= h >>> 15
  return h | 0 // signed int32, like Java
}

function kafkaPartition (key, numPartitions) {
  return (murmur2(key) & 0x7fffffff) % numPartitions
}

module.exports = { murmur2, kafkaPartition }
