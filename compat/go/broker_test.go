package compat

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	startDeadline = 30 * time.Second // broker must accept TCP within this
	stopDeadline  = 30 * time.Second // broker must exit after SIGTERM within this
)

func debugEnabled() bool { return os.Getenv("SPATE_COMPAT_DEBUG") != "" }

// brokerBin resolves the broker binary or skips the test.
func brokerBin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("SPATE_BROKER_BIN")
	if bin == "" {
		// go test runs with the package directory (compat/go) as cwd.
		bin = filepath.Join("..", "..", "target", "debug", "spate-broker")
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatalf("resolving broker binary %q: %v", bin, err)
	}
	st, err := os.Stat(abs)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Skipf("spate-broker binary not found/executable at %s (set SPATE_BROKER_BIN or run `cargo build -p spate-broker`): %v", abs, err)
	}
	return abs
}

// Broker is one spate-broker process bound to a fixed address and data dir.
type Broker struct {
	t       testing.TB
	bin     string
	Dir     string   // --data-dir, stays the same across restarts
	Addr    string   // 127.0.0.1:PORT, stays the same across restarts
	extra   []string // arguments after --data-dir (--listen, --set ...)
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process exited
	werr error         // cmd.Wait() result of the current process
}

// freePort asks the kernel for a currently unused loopback port.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartBroker starts a broker on a free port with a fresh t.TempDir() data
// dir. extraSets are passed as --set key=value. The process is killed at
// cleanup; on test failure the tail of its log is printed.
func StartBroker(t testing.TB, extraSets ...string) *Broker {
	t.Helper()
	return StartBrokerArgs(t, func(addr string) []string {
		args := []string{"--listen", addr}
		for _, s := range extraSets {
			args = append(args, "--set", s)
		}
		return args
	})
}

// StartBrokerArgs is StartBroker with the command line after --data-dir computed from the
// address the broker gets (called again if a port race makes StartBroker pick another). For a
// broker with several listeners: a `listeners` setting naming PLAINTEXT://addr (the address
// waited for) in place of --listen, and extra arguments such as --add-scram.
func StartBrokerArgs(t testing.TB, args func(addr string) []string) *Broker {
	t.Helper()
	bin := brokerBin(t)
	b := &Broker{
		t:       t,
		bin:     bin,
		Dir:     t.TempDir(),
		logPath: filepath.Join(t.TempDir(), "broker.log"),
	}
	t.Cleanup(func() {
		b.kill()
		if t.Failed() {
			b.dumpLog(80)
		}
	})
	// A port picked by freePort can be stolen before the broker binds it;
	// retry a couple of times with a fresh port if the process dies early.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		b.Addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		b.extra = args(b.Addr)
		if lastErr = b.start(); lastErr == nil {
			return b
		}
		b.mu.Lock()
		werr := b.werr
		b.mu.Unlock()
		if !b.exited() || werr == nil {
			break // still running but not listening, or a clean exit: not a port race
		}
	}
	t.Fatalf("broker did not come up: %v", lastErr)
	return nil
}

func (b *Broker) start() error {
	args := append([]string{"--data-dir", b.Dir}, b.extra...)
	logf, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "===== %s start: %s %s\n", time.Now().Format(time.RFC3339Nano), b.bin, strings.Join(args, " "))
	cmd := exec.Command(b.bin, args...)
	var out io.Writer = logf
	if debugEnabled() {
		out = io.MultiWriter(logf, os.Stderr)
	}
	cmd.Stdout = out
	cmd.Stderr = out
	// Own process group; SIGKILL the broker if this test process dies (e.g. go test killed).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", b.bin, err)
	}
	done := make(chan struct{})
	b.mu.Lock()
	b.cmd, b.done, b.werr = cmd, done, nil
	b.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		b.mu.Lock()
		b.werr = err
		b.mu.Unlock()
		close(done)
	}()
	return b.waitListening()
}

func (b *Broker) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// waitListening polls until the port accepts a TCP connection, the process
// exits, or startDeadline passes.
func (b *Broker) waitListening() error {
	deadline := time.Now().Add(startDeadline)
	for {
		select {
		case <-b.done:
			b.mu.Lock()
			werr := b.werr
			b.mu.Unlock()
			status := "exit status 0"
			if werr != nil {
				status = werr.Error()
			}
			return fmt.Errorf("broker exited (%s) before accepting connections on %s; log tail:\n%s", status, b.Addr, b.logTail(40))
		default:
		}
		c, err := net.DialTimeout("tcp", b.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("broker not accepting connections on %s after %v: %v; log tail:\n%s", b.Addr, startDeadline, err, b.logTail(40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits (with a deadline) for the process to exit.
// BROKER.md promises exit status 0 on SIGTERM; anything else is an error.
func (b *Broker) Stop() {
	b.t.Helper()
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.mu.Unlock()
	if cmd == nil || b.exited() {
		b.t.Fatalf("Stop: broker is not running")
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(stopDeadline):
		killGroup(cmd)
		<-done
		b.t.Fatalf("broker did not exit within %v of SIGTERM (killed it)", stopDeadline)
	}
	b.mu.Lock()
	werr := b.werr
	b.mu.Unlock()
	if werr != nil {
		b.t.Errorf("broker exited uncleanly after SIGTERM: %v (BROKER.md: SIGTERM exits 0)", werr)
	}
}

// Restart stops the broker gracefully and starts it again on the same data
// dir and address.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	if err := b.start(); err != nil {
		b.t.Fatalf("restarting broker: %v", err)
	}
}

// kill SIGKILLs the process if it is still running and waits for it.
func (b *Broker) kill() {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	killGroup(cmd)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// killGroup SIGKILLs the broker's own process group (it was started with
// Setpgid, so the group is just the broker and anything it spawned).
func killGroup(cmd *exec.Cmd) {
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		_ = cmd.Process.Kill()
	}
}

func (b *Broker) logTail(n int) string {
	f, err := os.Open(b.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

func (b *Broker) dumpLog(n int) {
	b.t.Logf("---- last %d lines of broker log %s ----\n%s", n, b.logPath, b.logTail(n))
}

// Client returns a kgo client for the broker, closed at cleanup.
func (b *Broker) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{
		kgo.SeedBrokers(b.Addr),
		kgo.ClientID("spate-compat-go"),
		kgo.RetryTimeout(20 * time.Second),
		kgo.RequestTimeoutOverhead(10 * time.Second),
		kgo.MetadataMinAge(100 * time.Millisecond),
	}
	if debugEnabled() {
		base = append(base, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, func() string {
			return "[" + t.Name() + "] "
		})))
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Admin returns a kadm client over a fresh kgo client.
func (b *Broker) Admin(t testing.TB) *kadm.Client {
	t.Helper()
	adm := kadm.NewClient(b.Client(t))
	adm.SetTimeoutMillis(15000)
	return adm
}

// Port returns the broker's TCP port.
func (b *Broker) Port() int32 {
	_, p, _ := net.SplitHostPort(b.Addr)
	n, _ := strconv.Atoi(p)
	return int32(n)
}

// ctxT is a context bounded by d and canceled at test cleanup.
func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually retries fn until it returns nil or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for {
		if err = fn(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
