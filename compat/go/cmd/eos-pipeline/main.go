// Command eos-pipeline is a consume-transform-produce application on franz-go's
// GroupTransactSession, for fault tests that kill brokers under it (faults/test_transactions.py):
// every input record "<n>" becomes "out-<n>" on the output topic, committed atomically with the
// input offsets. It runs until stdin closes or SIGTERM, and reports on stdout, one line each:
//
//	committed <transactions> <records>
//	aborted <transactions>
//	restarted <reason>
//
// When End returns an error (franz-go: never retryable) it starts a new session with the same
// transactional id, as a supervised application would; the new producer epoch fences the old.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "", "comma-separated bootstrap servers")
	in := flag.String("in", "pipe-in", "input topic")
	out := flag.String("out", "pipe-out", "output topic")
	group := flag.String("group", "faults-pipeline", "consumer group")
	txnID := flag.String("transactional-id", "faults-pipeline-go", "transactional id")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() { // stdin closing (the test process ending) stops the pipeline too
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		stop()
	}()

	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.TransactionalID(*txnID),
		kgo.TransactionTimeout(20 * time.Second),
		kgo.DefaultProduceTopic(*out),
		kgo.ConsumerGroup(*group),
		kgo.ConsumeTopics(*in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.SessionTimeout(10 * time.Second),
		kgo.HeartbeatInterval(500 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 200 * time.Millisecond }),
		// Client decisions (rebalances, retries, coordinator moves) go to stderr, which the
		// fault test logs: they explain a stall.
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, nil)),
	}
	var txns, records, aborted int
	for ctx.Err() == nil {
		sess, err := kgo.NewGroupTransactSession(opts...)
		if err != nil {
			fmt.Printf("restarted %v\n", err)
			time.Sleep(time.Second)
			continue
		}
		err = run(ctx, sess, &txns, &records, &aborted)
		sess.Close()
		if err != nil && ctx.Err() == nil {
			fmt.Printf("restarted %v\n", err)
		}
	}
}

// run processes batches until ctx ends or the session fails.
func run(ctx context.Context, sess *kgo.GroupTransactSession, txns, records, aborted *int) error {
	for {
		fs := sess.PollRecords(ctx, 200) // batches of up to 200 inputs per transaction
		if ctx.Err() != nil {
			return nil
		}
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out := &kgo.Record{Key: r.Key, Value: append([]byte("out-"), r.Value...)}
			sess.Produce(ctx, out, nil)
		})
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil {
			return fmt.Errorf("end: %w", err)
		}
		if committed {
			*txns++
			*records += fs.NumRecords()
			fmt.Printf("committed %d %d\n", *txns, *records)
		} else {
			*aborted++
			fmt.Printf("aborted %d\n", *aborted)
		}
	}
}
