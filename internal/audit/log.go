package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// DefaultBufferSize is how many events wait for the log writer before new
// ones are dropped, as kube-apiserver's --audit-log-batch-buffer-size.
const DefaultBufferSize = 10000

// LogOptions configure the JSON-lines log backend, as kube-apiserver's
// --audit-log-* flags.
type LogOptions struct {
	// Path is the log file; "-" writes to standard output.
	Path string
	// MaxSizeMB is the size in megabytes at which the file is rotated
	// (0: 100, lumberjack's default, as kube-apiserver); MaxBackups and
	// MaxAgeDays bound the rotated files kept (0: no bound).
	MaxSizeMB, MaxBackups, MaxAgeDays int
	// BufferSize is the queue between requests and the writer
	// (0: DefaultBufferSize).
	BufferSize int
}

// LogBackend writes events, one JSON object per line, in kube-apiserver's
// format. It is asynchronous, as kube-apiserver's batch mode: Process
// only queues the event, one goroutine encodes and writes (an event
// reaches the file within flushDelay), and when the queue is full the
// event is dropped and counted instead of holding the request up behind a
// slow disk.
type LogBackend struct {
	queue chan *auditv1.Event
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	out   io.Writer
	// buf holds whole lines not yet written: each Write to out carries
	// whole events, so rotation never splits one across two files.
	buf     []byte
	closer  io.Closer
	offered atomic.Int64
	dropped atomic.Int64
	failed  atomic.Int64
	written atomic.Int64
}

var _ Sink = (*LogBackend)(nil)

// OpenLog opens the log file (rotated with lumberjack, as
// kube-apiserver) and starts the writer.
func OpenLog(opts LogOptions) (*LogBackend, error) {
	if opts.Path == "-" {
		return NewLogBackend(os.Stdout, nil, opts.BufferSize), nil
	}
	if opts.Path == "" {
		return nil, fmt.Errorf("audit log: no path")
	}
	// Fail at start-up, not on the first event, when the file cannot be
	// written.
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o700); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	f, err := os.OpenFile(opts.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	f.Close()
	lj := &lumberjack.Logger{
		Filename: opts.Path, MaxSize: opts.MaxSizeMB,
		MaxBackups: opts.MaxBackups, MaxAge: opts.MaxAgeDays,
	}
	return NewLogBackend(lj, lj, opts.BufferSize), nil
}

// NewLogBackend writes to w and, on Close, closes closer (if not nil).
func NewLogBackend(w io.Writer, closer io.Closer, bufferSize int) *LogBackend {
	if bufferSize <= 0 {
		bufferSize = DefaultBufferSize
	}
	b := &LogBackend{
		queue:  make(chan *auditv1.Event, bufferSize),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		out:    w,
		closer: closer,
	}
	go b.run()
	return b
}

// Process queues ev, or drops it when the queue is full. The backend
// keeps ev: the caller must not change it afterwards.
func (b *LogBackend) Process(ev *auditv1.Event) {
	b.offered.Add(1)
	select {
	case b.queue <- ev:
	default:
		if n := b.dropped.Add(1); n&(n-1) == 0 { // log at powers of two
			log.Printf("audit: log queue full, %d events dropped", n)
		}
	}
}

// Processed is the number of events handed to Process.
func (b *LogBackend) Processed() int64 { return b.offered.Load() }

// Errors is the number of events dropped or not written.
func (b *LogBackend) Errors() int64 { return b.dropped.Load() + b.failed.Load() }

// Dropped is the number of events dropped because the queue was full.
func (b *LogBackend) Dropped() int64 { return b.dropped.Load() }

// Written is the number of events written.
func (b *LogBackend) Written() int64 { return b.written.Load() }

// Close writes what is queued, flushes and closes the file. Events
// processed after Close are dropped.
func (b *LogBackend) Close() error {
	b.once.Do(func() { close(b.stop) })
	<-b.done
	if b.closer != nil {
		return b.closer.Close()
	}
	return nil
}

// flushDelay is how long a written event may wait in the writer's
// buffer for more to share a write(2): a flush per event would cost a
// system call per request stage.
const flushDelay = 50 * time.Millisecond

func (b *LogBackend) run() {
	defer close(b.done)
	timer := time.NewTimer(flushDelay)
	timer.Stop()
	pending := false
	for {
		select {
		case ev := <-b.queue:
			b.write(ev)
			if !pending {
				pending = true
				timer.Reset(flushDelay)
			}
		case <-timer.C:
			pending = false
			b.flush()
		case <-b.stop:
			for len(b.queue) > 0 {
				b.write(<-b.queue)
			}
			b.flush()
			return
		}
	}
}

// writeBufferSize is how many bytes of whole lines are gathered into one
// write.
const writeBufferSize = 64 << 10

func (b *LogBackend) write(ev *auditv1.Event) {
	line, err := json.Marshal(ev)
	if err != nil {
		b.failed.Add(1)
		log.Printf("audit: encoding event %s: %v", ev.AuditID, err)
		return
	}
	if len(b.buf)+len(line)+1 > writeBufferSize {
		b.flush()
	}
	b.buf = append(b.buf, line...)
	b.buf = append(b.buf, '\n')
	b.written.Add(1)
}

func (b *LogBackend) flush() {
	if len(b.buf) == 0 {
		return
	}
	if _, err := b.out.Write(b.buf); err != nil {
		b.failed.Add(1)
		log.Printf("audit: writing the log: %v", err)
	}
	if cap(b.buf) > 4*writeBufferSize {
		b.buf = nil // do not keep the room a huge event needed
	} else {
		b.buf = b.buf[:0]
	}
}
