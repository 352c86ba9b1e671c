// Package serve is what the two Go peers share besides net/http itself: the command
// line, the listening socket and its "listening on" line, the post's limitNumClients
// semaphore, the --work-us sleep, graceful shutdown, a memory report for the docs and
// Go's own execution tracer (-trace FILE), the goroutine side of counterd's /trace.
// The counter logic, the part the post is about, lives in each program's main.go.
package serve

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/trace"
	"strconv"
	"syscall"
	"time"
)

// Verbose is -v: log every request, as the post's handlers do (log.Printf("inc %v", req)).
// Off by default, as in counterd, so that benchmarks do not measure a log line.
var Verbose bool

// Logf logs like the post's handlers, when -v is given.
func Logf(format string, args ...interface{}) {
	if Verbose {
		log.Printf(format, args...)
	}
}

// Main parses the command line, wraps mux in the semaphore and the sleep the flags ask
// for, and serves it on 127.0.0.1:PORT until SIGINT or SIGTERM.
func Main(name string, mux *http.ServeMux) {
	workUs := flag.Int("work-us", 0, "teaching device: sleep N µs in every request")
	maxClients := flag.Int("max-clients", 0,
		"the post's limitNumClients: at most N requests in handlers at once (0: no limit)")
	flag.BoolVar(&Verbose, "v", false, "log every request to stderr")
	traceFile := flag.String("trace", "",
		"write Go's execution trace (runtime/trace) to `FILE`, from start to SIGINT/SIGTERM; read it with go tool trace")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [flags] [PORT]    (PORT 8000; 0 picks a free one)\n", name)
		flag.PrintDefaults()
	}
	flag.Parse()
	port := 8000
	if flag.NArg() > 1 {
		flag.Usage()
		os.Exit(2)
	}
	if flag.NArg() == 1 {
		p, err := strconv.Atoi(flag.Arg(0))
		if err != nil || p < 0 || p > 65535 {
			fmt.Fprintf(os.Stderr, "%s: bad port %q\n", name, flag.Arg(0))
			os.Exit(2)
		}
		port = p
	}
	if *workUs < 0 || *maxClients < 0 {
		fmt.Fprintf(os.Stderr, "%s: -work-us and -max-clients must not be negative\n", name)
		os.Exit(2)
	}

	// Tracing starts before the listener exists, so the trace holds the whole life of the
	// server, and stops after the last connection has been served (see below).
	stopTrace := func() {}
	if *traceFile != "" {
		stopTrace = startTrace(name, *traceFile)
	}

	var h http.Handler = mux
	if *workUs > 0 {
		h = sleepFirst(h, time.Duration(*workUs)*time.Microsecond)
	}
	if *maxClients > 0 {
		h = limitNumClients(h, *maxClients)
	}

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	// Signals are caught before the "listening on" line, so that none comes too early.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go reportMemory(usr1)
	stopping, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The first line on stdout, as counterd's: scripts read the real port from it.
	// os.Stdout is unbuffered, so it is out once Printf returns.
	fmt.Printf("listening on http://%s\n", ln.Addr())
	log.Printf("%s: GOMAXPROCS %d, -work-us %d, -max-clients %d",
		name, runtime.GOMAXPROCS(0), *workUs, *maxClients)

	// Serve returns as soon as Shutdown begins; the connections still being served are
	// waited for through shutDown, so that the trace (and the log line) come after them.
	shutDown := make(chan struct{})
	go func() {
		defer close(shutDown)
		<-stopping.Done()
		done, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(done); err != nil {
			log.Printf("%s: shutdown: %v", name, err)
		}
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	<-shutDown
	stopTrace()
	log.Printf("%s: stopped", name)
}

// startTrace starts runtime/trace into path and returns what stops it: Stop flushes the
// tracer's buffers into the file, which is then closed. A file that cannot be written is
// a bad command line: exit 2, as for the other flags.
func startTrace(name, path string) func() {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: -trace: %v\n", name, err)
		os.Exit(2)
	}
	if err := trace.Start(f); err != nil {
		fmt.Fprintf(os.Stderr, "%s: -trace: %v\n", name, err)
		os.Exit(2)
	}
	return func() {
		trace.Stop()
		if err := f.Close(); err != nil {
			log.Printf("%s: -trace %s: %v", name, path, err)
		}
	}
}

// limitNumClients is the post's semaphore middleware: a buffered channel of maxClients
// slots; a request takes a slot before its handler runs and gives it back after. It
// bounds requests inside handlers, not connections: the goroutine of every accepted
// connection still exists and parks on the channel while the slots are taken. One
// semaphore wraps all three routes here (the post wraps /inc only).
func limitNumClients(h http.Handler, maxClients int) http.Handler {
	sema := make(chan struct{}, maxClients)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sema <- struct{}{}
		defer func() { <-sema }()
		h.ServeHTTP(w, req)
	})
}

// sleepFirst is -work-us: blocking work in every request, outside any lock, like
// counterd's --work-us. time.Sleep parks the goroutine on a runtime timer, not a thread.
func sleepFirst(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		time.Sleep(d)
		h.ServeHTTP(w, req)
	})
}

// reportMemory prints the runtime's memory statistics to stderr on SIGUSR1, after a
// collection: what docs/concurrency-model.md uses to split the memory of an idle
// connection into goroutine stack and heap.
func reportMemory(sig <-chan os.Signal) {
	for range sig {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		log.Printf("memstats goroutines=%d stack_inuse=%d heap_inuse=%d heap_alloc=%d sys=%d",
			runtime.NumGoroutine(), m.StackInuse, m.HeapInuse, m.HeapAlloc, m.Sys)
	}
}
