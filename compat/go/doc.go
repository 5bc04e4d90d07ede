// Package compat holds franz-go (kgo + kadm) compatibility tests for the
// Spate broker. Everything lives in _test.go files; run with
//
//	cd compat/go && go test ./...
//
// The tests start the broker binary themselves (see broker_test.go). The
// binary is $SPATE_BROKER_BIN, or ../../target/debug/spate-broker relative to
// this directory; when it is missing every test skips with a message.
//
// Set SPATE_COMPAT_DEBUG=1 to get franz-go debug logs on stderr and the
// broker's stderr streamed to the test's stderr as well.
package compat
