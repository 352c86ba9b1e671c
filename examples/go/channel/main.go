// go-channel: the post's "counter manager". One goroutine owns the map and nothing else
// touches it; handlers, each in its connection's goroutine, send it a command carrying a
// reply channel and wait for the answer. No lock: the channel hands the work over.
//
// The replies are ints, with -1 for "not found", as in the post, so a counter set to a
// negative value reads as not found (and cannot be incremented). Bodies are the post's,
// with status 200 throughout.
//
//	go-channel [-work-us N] [-max-clients N] [-trace FILE] [-v] [PORT]
package main

import (
	"fmt"
	"net/http"
	"strconv"

	"counterd/examples/go/internal/serve"
)

type op int

const (
	opGet op = iota
	opSet
	opInc
)

// command is one request to the manager; it answers on reply.
type command struct {
	op    op
	name  string
	val   int
	reply chan int
}

// startManager starts the goroutine that owns the counters and returns the channel it
// takes commands from.
func startManager(initial map[string]int) chan<- command {
	counters := make(map[string]int, len(initial))
	for k, v := range initial {
		counters[k] = v
	}
	cmds := make(chan command)
	go func() {
		for c := range cmds {
			switch c.op {
			case opGet:
				if v, ok := counters[c.name]; ok {
					c.reply <- v
				} else {
					c.reply <- -1
				}
			case opSet:
				counters[c.name] = c.val
				c.reply <- c.val
			case opInc:
				if _, ok := counters[c.name]; ok {
					counters[c.name]++
					c.reply <- counters[c.name]
				} else {
					c.reply <- -1
				}
			}
		}
	}()
	return cmds
}

// server holds the manager's command channel; the handlers are its methods.
type server struct {
	cmds chan<- command
}

// ask sends one command and waits for the manager's answer.
func (s *server) ask(o op, name string, val int) int {
	reply := make(chan int)
	s.cmds <- command{op: o, name: name, val: val, reply: reply}
	return <-reply
}

func (s *server) get(w http.ResponseWriter, req *http.Request) {
	serve.Logf("get %v", req)
	name := req.URL.Query().Get("name")
	if v := s.ask(opGet, name, 0); v >= 0 {
		fmt.Fprintf(w, "%s: %d\n", name, v)
	} else {
		fmt.Fprintf(w, "%s not found\n", name)
	}
}

func (s *server) set(w http.ResponseWriter, req *http.Request) {
	serve.Logf("set %v", req)
	q := req.URL.Query()
	n, err := strconv.Atoi(q.Get("val"))
	if err != nil {
		fmt.Fprintf(w, "%s\n", err)
		return
	}
	s.ask(opSet, q.Get("name"), n)
	fmt.Fprint(w, "ok\n")
}

func (s *server) inc(w http.ResponseWriter, req *http.Request) {
	serve.Logf("inc %v", req)
	name := req.URL.Query().Get("name")
	if s.ask(opInc, name, 0) >= 0 {
		fmt.Fprint(w, "ok\n")
	} else {
		fmt.Fprintf(w, "%s not found\n", name)
	}
}

func main() {
	s := &server{cmds: startManager(map[string]int{"i": 0, "j": 0})}
	mux := http.NewServeMux()
	mux.HandleFunc("/get", s.get)
	mux.HandleFunc("/set", s.set)
	mux.HandleFunc("/inc", s.inc)
	serve.Main("go-channel", mux)
}
