package transport

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestListenerCountsNetHTTPsOwnAnswers runs a real net/http server on the Listener: the answers it
// writes by itself are counted with their status, and the handler's answers are not.
func TestListenerCountsNetHTTPsOwnAnswers(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	counted := map[int]int{}
	ln := NewListener(raw, 16, func(status int) { mu.Lock(); counted[status]++; mu.Unlock() })
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Connection", "close")
			w.WriteHeader(503) // a handler's 5xx, with Connection: close too: not net/http's own
			_, _ = io.WriteString(w, `{"status":503}`)
		}),
		MaxHeaderBytes: 4096,
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	for _, tt := range []struct {
		raw, want string
	}{
		{"GARBAGE\r\n\r\n", "400"},
		{"GET / HTTP/1.1\r\n\r\n", "400"}, // no Host: net/http's statusError form
		{"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 16<<10) + "\r\n\r\n", "431"},
		{"GET / HTTP/7.1\r\nHost: x\r\n\r\n", "505"},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "501"},
		{"GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n", "417"},
		{"GET / HTTP/1.0\r\nExpect: teapot\r\n\r\n", "417"},
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "503"},
	} {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, tt.raw)
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || !strings.Contains(line, " "+tt.want+" ") {
			t.Fatalf("%.30q: got %q, %v; want %s", tt.raw, line, err, tt.want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if counted[400] != 2 || counted[431] != 1 || counted[505] != 1 || counted[501] != 1 || counted[417] != 2 || counted[503] != 0 {
		t.Fatalf("counted %v; want 400×2, 431, 505, 501, 417×2 and not the handler's 503", counted)
	}
	if ln.Accepted() != 8 {
		t.Fatalf("accepted %d connections, want 8", ln.Accepted())
	}
}

func TestRejectionStatus(t *testing.T) {
	for p, want := range map[string]int{
		"HTTP/1.1 400 Bad Request" + string(netHTTPErrorHeaders) + "400 Bad Request":        400,
		"HTTP/1.1 200 OK" + string(netHTTPErrorHeaders):                                     0,
		"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\r\n{}":    0,
		"HTTP/1.1 4x0 Bad" + string(netHTTPErrorHeaders):                                    0,
		"HTTP/1.0 400 Bad Request" + string(netHTTPErrorHeaders):                            0,
		"HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n": 417,
		"HTTP/1.0 417 Expectation Failed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n": 417,
		"HTTP/1.1 417 Expectation Failed\r\nContent-Type: application/json\r\n\r\n{}":       0, // a route's 417
		"HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\n":                          0, // the head cut: not net/http's one write
		"HTTP/1.1 4": 0,
		"":           0,
	} {
		if got, _ := rejectionStatus([]byte(p)); got != want {
			t.Errorf("%.40q: %d, want %d", p, got, want)
		}
	}
}

// TestListenerHoldsAtMostMaxConns: with the limit's connections open, the next one waits in the
// backlog until one of them closes; closing the listener ends an Accept that waits for a slot.
func TestListenerHoldsAtMostMaxConns(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(raw, 2, func(int) {})
	defer ln.Close()
	accepted := make(chan net.Conn)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first, second := <-accepted, <-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted while 2, the limit, were open")
	case <-time.After(100 * time.Millisecond):
	}
	if ln.Open() != 2 {
		t.Fatalf("open %d, want 2", ln.Open())
	}
	first.Close()
	select {
	case third := <-accepted:
		defer third.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the third connection was not accepted after one of two closed")
	}
	second.Close()
	if ln.Open() != 1 || ln.Accepted() != 3 {
		t.Fatalf("open %d, accepted %d; want 1 and 3", ln.Open(), ln.Accepted())
	}
	ln.Close()
	select {
	case _, ok := <-accepted:
		if ok {
			t.Fatal("accepted a connection after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
}
