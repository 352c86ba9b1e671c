// trace2json: Go's execution trace (a go-mutex or go-channel -trace FILE) as the same
// Chrome Trace Event JSON that counterd's GET /trace answers, so that the dashboard's
// timeline draws both the same way.
//
// The conversion itself is Go's own: `go tool trace` serves the trace as Chrome JSON on
// /jsontrace (what its "View trace" page loads), one track per P with a slice per
// goroutine run, flow arrows from a goroutine to the one it unblocks or starts. This
// program runs that tool on a loopback port, reads /jsontrace once and keeps, of the
// window asked for, what the timeline needs: the P tracks, their goroutine slices and
// the flows between them. Everything else (the STATS process, the GC/Network/Timers/
// Syscalls pseudo-tracks, stack frames) is left out, so that a few milliseconds of a
// busy server come to kilobytes rather than the tool's ~50 MB per second.
//
//	trace2json [-name NAME] [-from DUR] [-span DUR] [-o FILE] TRACE
//
// A newer Go (1.22+) would allow golang.org/x/exp/trace instead; Debian's Go 1.19 has
// only this exporter, and it needs no module beyond the standard library.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// event is one Chrome trace event as go tool trace writes it (stack references dropped).
type event struct {
	Name string          `json:"name"`
	Ph   string          `json:"ph"`
	Ts   float64         `json:"ts"`
	Dur  float64         `json:"dur"`
	Pid  uint64          `json:"pid"`
	Tid  uint64          `json:"tid"`
	ID   uint64          `json:"id"`
	Args json.RawMessage `json:"args"`
}

// procsPid is the process go tool trace puts the P tracks in ("PROCS").
const procsPid = 0

func main() {
	name := flag.String("name", "go", "process name shown on the timeline")
	from := flag.Duration("from", 0, "start of the window kept, from the start of the trace")
	span := flag.Duration("span", 0, "length of the window kept (0: to the end of the trace)")
	out := flag.String("o", "-", "output `FILE` (- for stdout)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: trace2json [flags] TRACE\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || *from < 0 || *span < 0 {
		flag.Usage()
		os.Exit(2)
	}
	lo := float64(from.Nanoseconds()) / 1e3
	hi := lo + float64(span.Nanoseconds())/1e3
	if *span == 0 {
		hi = 1e300
	}
	body, stop, err := jsonTrace(flag.Arg(0))
	if err != nil {
		fail(err)
	}
	kept, err := keep(body, lo, hi)
	stop()
	if err != nil {
		fail(err)
	}
	w := os.Stdout
	if *out != "-" {
		if w, err = os.Create(*out); err != nil {
			fail(err)
		}
	}
	bw := bufio.NewWriter(w)
	kept.write(bw, *name)
	if err := bw.Flush(); err != nil {
		fail(err)
	}
	if err := w.Close(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "trace2json: %v\n", err)
	os.Exit(1)
}

// jsonTrace starts `go tool trace` on a free loopback port and returns its /jsontrace
// body, and what stops the tool.
func jsonTrace(path string) (io.ReadCloser, func(), error) {
	// `go tool -n trace` names the tool's binary: running it directly leaves one process
	// to stop, not `go` and its child.
	bin, err := exec.Command("go", "tool", "-n", "trace").Output()
	if err != nil {
		return nil, nil, fmt.Errorf("go tool -n trace: %v", err)
	}
	cmd := exec.Command(strings.TrimSpace(string(bin)), "-http=127.0.0.1:0", path)
	// The tool opens a browser on its page; `true` is a browser that does nothing.
	cmd.Env = append(os.Environ(), "BROWSER=true")
	logs, err := cmd.StderrPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	addr := ""
	lines := bufio.NewScanner(logs)
	var said []string
	for lines.Scan() {
		line := lines.Text()
		said = append(said, line)
		if i := strings.Index(line, "listening on "); i >= 0 {
			addr = strings.TrimSpace(line[i+len("listening on "):])
			break
		}
	}
	if addr == "" {
		stop()
		return nil, nil, fmt.Errorf("go tool trace %s did not start:\n%s", path, strings.Join(said, "\n"))
	}
	go func() { _, _ = io.Copy(io.Discard, logs) }() // keep its stderr drained
	client := http.Client{Timeout: 5 * time.Minute}
	res, err := client.Get(addr + "/jsontrace")
	if err != nil {
		stop()
		return nil, nil, err
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		stop()
		return nil, nil, fmt.Errorf("%s/jsontrace: %s", addr, res.Status)
	}
	return res.Body, func() { res.Body.Close(); stop() }, nil
}

// kept is what the timeline draws of the window.
type kept struct {
	procs  map[uint64]string // tid -> "Proc N"
	slices []event
	flows  [][2]event // start, end
}

// keep streams the tool's JSON and keeps the window [lo, hi) (µs from the trace start).
func keep(r io.Reader, lo, hi float64) (*kept, error) {
	k := &kept{procs: map[uint64]string{}}
	starts := map[uint64]event{} // flow id -> its start, until its end is seen
	ends := map[uint64]event{}
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<20))
	if _, err := dec.Token(); err != nil { // {
		return nil, err
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if key != "traceEvents" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, err
			}
			continue
		}
		if _, err := dec.Token(); err != nil { // [
			return nil, err
		}
		for dec.More() {
			var ev event
			if err := dec.Decode(&ev); err != nil {
				return nil, err
			}
			if ev.Pid != procsPid {
				continue
			}
			switch ev.Ph {
			case "M":
				var a struct{ Name string }
				if ev.Name == "thread_name" && json.Unmarshal(ev.Args, &a) == nil &&
					strings.HasPrefix(a.Name, "Proc ") {
					k.procs[ev.Tid] = a.Name
				}
			case "X":
				if ev.Ts < hi && ev.Ts+ev.Dur >= lo {
					k.slices = append(k.slices, ev)
				}
			case "s", "t", "f":
				// A flow is kept when both its ends fall in the window.
				if ev.Ts < lo || ev.Ts >= hi {
					continue
				}
				if ev.Ph == "s" {
					if end, ok := ends[ev.ID]; ok {
						k.flows = append(k.flows, [2]event{ev, end})
						delete(ends, ev.ID)
					} else {
						starts[ev.ID] = ev
					}
				} else if start, ok := starts[ev.ID]; ok {
					k.flows = append(k.flows, [2]event{start, ev})
					delete(starts, ev.ID)
				} else {
					ends[ev.ID] = ev
				}
			}
		}
		if _, err := dec.Token(); err != nil { // ]
			return nil, err
		}
	}
	return k, nil
}

// write puts out the kept window in the shape of counterd's /trace: one process, a
// thread per P (tid P+1), goroutine slices as X events, flows as s and f (bp "e").
func (k *kept) write(w *bufio.Writer, name string) {
	tids := make([]uint64, 0, len(k.procs))
	for tid := range k.procs {
		tids = append(tids, tid)
	}
	sort.Slice(tids, func(i, j int) bool { return tids[i] < tids[j] })
	sort.SliceStable(k.slices, func(i, j int) bool { return k.slices[i].Ts < k.slices[j].Ts })
	fmt.Fprintf(w, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n")
	fmt.Fprintf(w, "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":1,\"tid\":0,\"args\":{\"name\":%s}}", quote(name))
	for _, tid := range tids {
		fmt.Fprintf(w, ",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":%d,\"args\":{\"name\":%s}}",
			tid+1, quote(k.procs[tid]))
		fmt.Fprintf(w, ",\n{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":1,\"tid\":%d,\"args\":{\"sort_index\":%d}}",
			tid+1, tid+1)
	}
	for _, s := range k.slices {
		if _, ok := k.procs[s.Tid]; !ok {
			continue
		}
		fmt.Fprintf(w, ",\n{\"ph\":\"X\",\"cat\":\"goroutine\",\"name\":%s,\"pid\":1,\"tid\":%d,\"ts\":%s,\"dur\":%s}",
			quote(s.Name), s.Tid+1, us(s.Ts), us(s.Dur))
	}
	for _, f := range k.flows {
		_, a := k.procs[f[0].Tid]
		_, b := k.procs[f[1].Tid]
		if !a || !b {
			continue
		}
		cat := quote(f[0].Name) // "unblock" or "go" (a goroutine started)
		fmt.Fprintf(w, ",\n{\"ph\":\"s\",\"cat\":%s,\"name\":%s,\"id\":%d,\"pid\":1,\"tid\":%d,\"ts\":%s}",
			cat, cat, f[0].ID, f[0].Tid+1, us(f[0].Ts))
		fmt.Fprintf(w, ",\n{\"ph\":\"f\",\"bp\":\"e\",\"cat\":%s,\"name\":%s,\"id\":%d,\"pid\":1,\"tid\":%d,\"ts\":%s}",
			cat, cat, f[0].ID, f[1].Tid+1, us(f[1].Ts))
	}
	fmt.Fprintf(w, "\n]}\n")
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// us writes microseconds to the nanosecond, as counterd does.
func us(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
