package compat

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

const (
	saslAdmin         = "admin"
	saslAdminPassword = "admin-secret"
	scramFailure      = "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
	plainFailure      = "Authentication failed: Invalid username or password"
)

// saslBroker is a broker with three listeners: PLAINTEXT (inter-broker, what StartBroker
// waits for), SASL_PLAINTEXT (PLAIN and both SCRAMs) and SASL_SSL (both SCRAMs, certificate
// from compat/certs.sh). Its one user, admin, comes from --add-scram.
type saslBroker struct {
	*Broker
	saslPlaintext string
	saslSSL       string
	tls           *tls.Config
}

func startSASLBroker(t *testing.T) *saslBroker {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl CLI not installed")
	}
	pki := t.TempDir()
	if out, err := exec.Command("bash", filepath.Join("..", "certs.sh"), pki).CombinedOutput(); err != nil {
		t.Fatalf("certs.sh: %v\n%s", err, out)
	}
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	sb := &saslBroker{tls: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	sb.Broker = StartBrokerArgs(t, func(addr string) []string {
		sb.saslPlaintext = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		sb.saslSSL = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		sets := []string{
			"auto.create.topics.enable=false",
			fmt.Sprintf("listeners=PLAINTEXT://%s,SASL_PLAINTEXT://%s,SASL_SSL://%s", addr, sb.saslPlaintext, sb.saslSSL),
			"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
			"inter.broker.listener.name=PLAINTEXT",
			"ssl.keystore.location=" + filepath.Join(pki, "broker.pem"),
			"ssl.truststore.location=" + filepath.Join(pki, "ca.pem"),
			"listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
		}
		var args []string
		for _, s := range sets {
			args = append(args, "--set", s)
		}
		return append(args, "--add-scram", fmt.Sprintf("SCRAM-SHA-512=[name=%s,password=%s]", saslAdmin, saslAdminPassword))
	})
	return sb
}

// login returns the client options for one listener and mechanism.
func (sb *saslBroker) login(listener, mechanism, user, password string) []kgo.Opt {
	var m sasl.Mechanism
	switch mechanism {
	case "PLAIN":
		m = plain.Auth{User: user, Pass: password}.AsMechanism()
	case "SCRAM-SHA-256":
		m = scram.Auth{User: user, Pass: password}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		m = scram.Auth{User: user, Pass: password}.AsSha512Mechanism()
	default:
		panic(mechanism)
	}
	opts := []kgo.Opt{kgo.SASL(m)}
	switch listener {
	case "SASL_PLAINTEXT":
		opts = append(opts, kgo.SeedBrokers(sb.saslPlaintext))
	case "SASL_SSL":
		opts = append(opts, kgo.SeedBrokers(sb.saslSSL), kgo.DialTLSConfig(sb.tls.Clone()))
	default:
		panic(listener)
	}
	return opts
}

// adminAs is a kadm client logged in over the SASL_SSL listener.
func (sb *saslBroker) adminAs(t *testing.T, user, password string) *kadm.Client {
	adm := kadm.NewClient(sb.Client(t, sb.login("SASL_SSL", "SCRAM-SHA-512", user, password)...))
	adm.SetTimeoutMillis(15000)
	return adm
}

// saslRoundTrip creates a one-partition topic (as admin), then does a roundTrip with the login.
func saslRoundTrip(t *testing.T, sb *saslBroker, topic string, n int, login []kgo.Opt) {
	t.Helper()
	createTopic(t, sb.adminAs(t, saslAdmin, saslAdminPassword), topic, 1, nil)
	roundTrip(t, sb.Broker, topic, n, login)
}

// roundTrip produces n records to topic with the login and consumes them back through a
// consumer group with the same login, in order, then commits.
func roundTrip(t *testing.T, b *Broker, topic string, n int, login []kgo.Opt) {
	t.Helper()
	prod := b.Client(t, login...)
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("v%d", i))})
	}
	if err := prod.ProduceSync(ctxT(t, 30*time.Second), recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d records to %s: %v", n, topic, err)
	}
	cons := b.Client(t, append(login,
		kgo.ConsumeTopics(topic),
		kgo.ConsumerGroup("g-"+topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.DisableAutoCommit(),
	)...)
	ctx := ctxT(t, 30*time.Second)
	var got []string
	for len(got) < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline", len(got), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	for i, v := range got {
		if want := fmt.Sprintf("v%d", i); v != want {
			t.Fatalf("record %d = %q, want %q (all: %v)", i, v, want, got)
		}
	}
	if len(got) != n {
		t.Fatalf("consumed %d records, want %d", len(got), n)
	}
	if err := cons.CommitUncommittedOffsets(ctxT(t, 20*time.Second)); err != nil {
		t.Fatalf("commit through the group coordinator: %v", err)
	}
}

func TestSASLProduceConsume(t *testing.T) {
	sb := startSASLBroker(t)
	for _, c := range []struct{ listener, mechanism string }{
		{"SASL_SSL", "SCRAM-SHA-512"},
		{"SASL_PLAINTEXT", "PLAIN"},
		{"SASL_PLAINTEXT", "SCRAM-SHA-512"},
	} {
		t.Run(c.listener+"/"+c.mechanism, func(t *testing.T) {
			topic := strings.ToLower("sasl-" + c.listener + "-" + c.mechanism)
			saslRoundTrip(t, sb, topic, 100, sb.login(c.listener, c.mechanism, saslAdmin, saslAdminPassword))
		})
	}
}

// loginError is the error of the first request a client with this login makes.
func loginError(t *testing.T, sb *saslBroker, login []kgo.Opt) error {
	t.Helper()
	cl := sb.Client(t, append(login, kgo.RetryTimeout(5*time.Second))...)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := cl.Ping(ctx)
	if err == nil {
		t.Fatal("login succeeded")
	}
	return err
}

func TestSASLFailedLogins(t *testing.T) {
	sb := startSASLBroker(t)
	for _, c := range []struct{ listener, mechanism, message string }{
		{"SASL_SSL", "SCRAM-SHA-512", scramFailure},
		{"SASL_PLAINTEXT", "PLAIN", plainFailure},
	} {
		t.Run(c.listener+"/"+c.mechanism, func(t *testing.T) {
			wrong := loginError(t, sb, sb.login(c.listener, c.mechanism, saslAdmin, "not-the-password"))
			unknown := loginError(t, sb, sb.login(c.listener, c.mechanism, "nobody", saslAdminPassword))
			for _, err := range []error{wrong, unknown} {
				if !strings.Contains(err.Error(), "SASL_AUTHENTICATION_FAILED") || !strings.Contains(err.Error(), c.message) {
					t.Errorf("error %q: want SASL_AUTHENTICATION_FAILED with %q", err, c.message)
				}
			}
			if wrong.Error() != unknown.Error() {
				t.Errorf("wrong password (%q) and unknown user (%q) must fail alike", wrong, unknown)
			}
			// The right password still works.
			if err := sb.Client(t, sb.login(c.listener, c.mechanism, saslAdmin, saslAdminPassword)...).Ping(ctxT(t, 15*time.Second)); err != nil {
				t.Fatalf("login with the right password: %v", err)
			}
		})
	}
}

func TestSASLAdminUserSCRAMs(t *testing.T) {
	sb := startSASLBroker(t)
	adm := sb.adminAs(t, saslAdmin, saslAdminPassword)
	// One request per mechanism: Kafka refuses a user named twice in one request
	// (DUPLICATE_RESOURCE), and so does Spate.
	dup, err := adm.AlterUserSCRAMs(ctxT(t, 20*time.Second), nil, []kadm.UpsertSCRAM{
		{User: "dave", Mechanism: kadm.ScramSha256, Iterations: 8192, Password: "x"},
		{User: "dave", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "x"},
	})
	if err != nil {
		t.Fatalf("AlterUserSCRAMs(dave twice): %v", err)
	}
	if err := dup.Error(); err == nil || !strings.Contains(err.Error(), "DUPLICATE_RESOURCE") {
		t.Fatalf("a user twice in one request: %v, want DUPLICATE_RESOURCE", err)
	}
	for _, u := range []kadm.UpsertSCRAM{
		{User: "carol", Mechanism: kadm.ScramSha256, Iterations: 8192, Password: "carol-secret"},
		{User: "carol", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "carol-secret"},
	} {
		altered, err := adm.AlterUserSCRAMs(ctxT(t, 20*time.Second), nil, []kadm.UpsertSCRAM{u})
		if err != nil {
			t.Fatalf("AlterUserSCRAMs: %v", err)
		}
		if err := altered.Error(); err != nil {
			t.Fatalf("AlterUserSCRAMs(carol): %v", err)
		}
	}

	described, err := adm.DescribeUserSCRAMs(ctxT(t, 20*time.Second), "carol")
	if err != nil {
		t.Fatalf("DescribeUserSCRAMs(carol): %v", err)
	}
	carol := described["carol"]
	if carol.Err != nil {
		t.Fatalf("DescribeUserSCRAMs(carol): %v (%s)", carol.Err, carol.ErrMessage)
	}
	var infos []string
	for _, ci := range carol.CredInfos {
		infos = append(infos, fmt.Sprintf("%s/%d", ci.Mechanism, ci.Iterations))
	}
	sort.Strings(infos)
	if want := "SCRAM-SHA-256/8192,SCRAM-SHA-512/4096"; strings.Join(infos, ",") != want {
		t.Fatalf("carol's credentials: %v, want %s", infos, want)
	}

	all, err := adm.DescribeUserSCRAMs(ctxT(t, 20*time.Second))
	if err != nil || all.Error() != nil {
		t.Fatalf("DescribeUserSCRAMs(): %v %v", err, all.Error())
	}
	var users []string
	for u := range all {
		users = append(users, u)
	}
	sort.Strings(users)
	if strings.Join(users, ",") != "admin,carol" {
		t.Fatalf("DescribeUserSCRAMs() users: %v, want [admin carol]", users)
	}

	saslRoundTrip(t, sb, "sasl-carol-256", 20, sb.login("SASL_PLAINTEXT", "SCRAM-SHA-256", "carol", "carol-secret"))
	saslRoundTrip(t, sb, "sasl-carol-512", 20, sb.login("SASL_SSL", "SCRAM-SHA-512", "carol", "carol-secret"))

	// Deleting carol's SCRAM-SHA-256 credential ends SHA-256 logins; SHA-512 still works.
	altered, err := adm.AlterUserSCRAMs(ctxT(t, 20*time.Second), []kadm.DeleteSCRAM{{User: "carol", Mechanism: kadm.ScramSha256}}, nil)
	if err != nil || altered.Error() != nil {
		t.Fatalf("AlterUserSCRAMs(delete carol SCRAM-SHA-256): %v %v", err, altered.Error())
	}
	if err := loginError(t, sb, sb.login("SASL_PLAINTEXT", "SCRAM-SHA-256", "carol", "carol-secret")); !strings.Contains(err.Error(), "SASL_AUTHENTICATION_FAILED") {
		t.Errorf("SCRAM-SHA-256 login after deleting that credential: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	if err := sb.Client(t, sb.login("SASL_SSL", "SCRAM-SHA-512", "carol", "carol-secret")...).Ping(ctxT(t, 15*time.Second)); err != nil {
		t.Fatalf("SCRAM-SHA-512 login after deleting the SHA-256 credential: %v", err)
	}

	// Describing a user without credentials: RESOURCE_NOT_FOUND for that user, as Kafka.
	none, err := adm.DescribeUserSCRAMs(ctxT(t, 20*time.Second), "nobody")
	if err != nil {
		t.Fatalf("DescribeUserSCRAMs(nobody): %v", err)
	}
	if e := none["nobody"].Err; e == nil || !strings.Contains(e.Error(), "RESOURCE_NOT_FOUND") {
		t.Errorf("DescribeUserSCRAMs(nobody): err %v (%s), want RESOURCE_NOT_FOUND", e, none["nobody"].ErrMessage)
	}
}
