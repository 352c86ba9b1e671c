// go-mutex: the post's fixed counter server. net/http runs every connection's handlers
// in that connection's goroutine, so the map is shared between goroutines; a sync.Mutex
// embedded in the store serializes every access to it, and the handlers have pointer
// receivers so that they all lock the same mutex (a value receiver would copy it).
//
// As in the post, each handler takes the lock first and holds it to its end (defer), so
// the whole handler, answer formatting included, is the critical section. The bodies are
// the post's, with status 200 throughout ("x not found" included).
//
//	go-mutex [-work-us N] [-max-clients N] [-trace FILE] [-v] [PORT]
package main

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"counterd/examples/go/internal/serve"
)

// CounterStore is the table of counters and the lock that guards it.
type CounterStore struct {
	sync.Mutex
	counters map[string]int
}

func (cs *CounterStore) get(w http.ResponseWriter, req *http.Request) {
	serve.Logf("get %v", req)
	cs.Lock()
	defer cs.Unlock()
	name := req.URL.Query().Get("name")
	if val, ok := cs.counters[name]; ok {
		fmt.Fprintf(w, "%s: %d\n", name, val)
	} else {
		fmt.Fprintf(w, "%s not found\n", name)
	}
}

func (cs *CounterStore) set(w http.ResponseWriter, req *http.Request) {
	serve.Logf("set %v", req)
	cs.Lock()
	defer cs.Unlock()
	q := req.URL.Query()
	n, err := strconv.Atoi(q.Get("val"))
	if err != nil {
		fmt.Fprintf(w, "%s\n", err)
		return
	}
	cs.counters[q.Get("name")] = n
	fmt.Fprint(w, "ok\n")
}

func (cs *CounterStore) inc(w http.ResponseWriter, req *http.Request) {
	serve.Logf("inc %v", req)
	cs.Lock()
	defer cs.Unlock()
	name := req.URL.Query().Get("name")
	if _, ok := cs.counters[name]; ok {
		cs.counters[name]++
		fmt.Fprint(w, "ok\n")
	} else {
		fmt.Fprintf(w, "%s not found\n", name)
	}
}

func main() {
	store := &CounterStore{counters: map[string]int{"i": 0, "j": 0}}
	mux := http.NewServeMux()
	mux.HandleFunc("/get", store.get)
	mux.HandleFunc("/set", store.set)
	mux.HandleFunc("/inc", store.inc)
	serve.Main("go-mutex", mux)
}
