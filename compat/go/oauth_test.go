package compat

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
)

const (
	oauthAudience = "spate"
	oauthIssuer   = "https://issuer.test"
)

// jwtIssuer is an ES256 key (P-256), its JWKS and the tokens it signs, all with the stdlib.
type jwtIssuer struct {
	kid string
	key *ecdsa.PrivateKey
}

func newJWTIssuer(t *testing.T, kid string) *jwtIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &jwtIssuer{kid: kid, key: key}
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwks is the JWKS document with the issuer's public key.
func (i *jwtIssuer) jwks(t *testing.T) []byte {
	t.Helper()
	pub, err := i.key.PublicKey.Bytes() // uncompressed point: 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": i.kid, "use": "sig", "alg": "ES256",
		"x": b64url(pub[1:33]), "y": b64url(pub[33:65]),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// token is a JWT for sub and aud that expires ttl from now (negative: already expired).
func (i *jwtIssuer) token(t *testing.T, sub, aud string, ttl time.Duration) string {
	t.Helper()
	now := time.Now().Unix()
	header, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT", "kid": i.kid})
	claims, _ := json.Marshal(map[string]any{
		"sub": sub, "aud": aud, "iss": oauthIssuer, "iat": now, "exp": now + int64(ttl/time.Second),
	})
	input := b64url(header) + "." + b64url(claims)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, i.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64) // JWS ES256: raw r || s, 32 bytes each
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64url(sig)
}

// oauthBroker is a broker with PLAINTEXT (inter-broker) and OAUTH (SASL_PLAINTEXT,
// OAUTHBEARER only) listeners that validates tokens against the issuer's JWKS file.
type oauthBroker struct {
	*Broker
	oauthAddr string
}

func startOAuthBroker(t *testing.T, iss *jwtIssuer) *oauthBroker {
	t.Helper()
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, iss.jwks(t), 0o600); err != nil {
		t.Fatal(err)
	}
	ob := &oauthBroker{}
	ob.Broker = StartBrokerArgs(t, func(addr string) []string {
		ob.oauthAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		sets := []string{
			"auto.create.topics.enable=false",
			fmt.Sprintf("listeners=PLAINTEXT://%s,OAUTH://%s", addr, ob.oauthAddr),
			"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,OAUTH:SASL_PLAINTEXT",
			"inter.broker.listener.name=PLAINTEXT",
			"listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER",
			"sasl.oauthbearer.jwks.endpoint.url=file://" + jwks,
			"sasl.oauthbearer.expected.audience=" + oauthAudience,
			"sasl.oauthbearer.expected.issuer=" + oauthIssuer,
		}
		var args []string
		for _, s := range sets {
			args = append(args, "--set", s)
		}
		return args
	})
	return ob
}

func (ob *oauthBroker) login(token string) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(ob.oauthAddr),
		kgo.SASL(oauth.Auth{Token: token}.AsMechanism()),
	}
}

func TestOAuthBearerProducesAndConsumes(t *testing.T) {
	iss := newJWTIssuer(t, "k1")
	ob := startOAuthBroker(t, iss)
	topic := "oauth-" + fmt.Sprint(time.Now().UnixNano())
	createTopic(t, kadm.NewClient(ob.Client(t)), topic, 1, nil)

	const n = 20
	roundTrip(t, ob.Broker, topic, n, ob.login(iss.token(t, "alice", oauthAudience, 10*time.Minute)))
}

func TestOAuthBearerInvalidTokenFails(t *testing.T) {
	iss := newJWTIssuer(t, "k1")
	ob := startOAuthBroker(t, iss)
	topic := "oauth-bad-" + fmt.Sprint(time.Now().UnixNano())
	adm := kadm.NewClient(ob.Client(t))
	createTopic(t, adm, topic, 1, nil)

	for _, tc := range []struct{ why, token string }{
		{"another key", newJWTIssuer(t, "k1").token(t, "alice", oauthAudience, 10*time.Minute)},
		{"wrong audience", iss.token(t, "alice", "elsewhere", 10*time.Minute)},
		{"expired", iss.token(t, "alice", oauthAudience, -5*time.Minute)},
		{"not a JWT", "abc"},
	} {
		t.Run(tc.why, func(t *testing.T) {
			cl := ob.Client(t, append(ob.login(tc.token), kgo.RetryTimeout(5*time.Second))...)
			err := cl.Ping(ctxT(t, 15*time.Second))
			if err == nil {
				t.Fatal("login with an invalid token succeeded")
			}
			if !errors.Is(err, kerr.SaslAuthenticationFailed) || !strings.Contains(err.Error(), "SASL_AUTHENTICATION_FAILED") {
				t.Fatalf("login error = %v, want SASL_AUTHENTICATION_FAILED", err)
			}
			t.Logf("login error: %v", err)
			// franz-go keeps retrying a produce whose connection fails to authenticate, so
			// the record fails only at the context's deadline; it must not land.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("must-not-land")}).FirstErr(); err == nil {
				t.Fatal("produce with an invalid token succeeded")
			}
		})
	}

	offs, err := adm.ListEndOffsets(ctxT(t, 15*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(topic, 0); !ok || o.Err != nil || o.Offset != 0 {
		t.Fatalf("end offset of %s[0] = %+v (found %v), want 0: nothing produced", topic, o, ok)
	}
	// A valid token still logs in afterwards.
	good := kadm.NewClient(ob.Client(t, ob.login(iss.token(t, "alice", oauthAudience, 10*time.Minute))...))
	if _, err := good.BrokerMetadata(ctxT(t, 15*time.Second)); err != nil {
		t.Fatalf("metadata with a valid token: %v", err)
	}
}
