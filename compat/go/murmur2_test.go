package compat

import "testing"

// kafkaMurmur2 is an independent port of org.apache.kafka.common.utils.Utils#murmur2.
func kafkaMurmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	n4 := length / 4
	for i := 0; i < n4; i++ {
		i4 := i * 4
		k := uint32(data[i4]) | uint32(data[i4+1])<<8 | uint32(data[i4+2])<<16 | uint32(data[i4+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	rem := data[n4*4:]
	switch len(rem) {
	case 3:
		h ^= uint32(rem[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(rem[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(rem[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// kafkaPartition is what Kafka's Java producer (BuiltInPartitioner /
// old DefaultPartitioner) does for a keyed record: toPositive(murmur2(key)) % n.
func kafkaPartition(key []byte, n int) int32 {
	return (kafkaMurmur2(key) & 0x7fffffff) % int32(n)
}

// TestMurmur2Vectors checks the port against Kafka's own UtilsTest vectors so
// a mismatch in the partition checks is the broker's/client's, not ours.
func TestMurmur2Vectors(t *testing.T) {
	cases := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	}
	for in, want := range cases {
		if got := kafkaMurmur2([]byte(in)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}
