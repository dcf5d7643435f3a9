// Command conns opens many idle keep-alive connections to an HTTP server, for the memory figures
// of scripts/bench.sh: each connection sends one GET, reads its whole answer and stays open,
// idle, as a kept-alive client connection does between requests. Once every connection is open it
// prints "open N" (N the connections that got an answer) and holds them until -hold passes or it
// is signalled; connections the server closes meanwhile are counted and printed at the end.
//
//	conns -addr 127.0.0.1:18190 -n 5000 -path /bench/x -hold 60s
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server address")
	n := flag.Int("n", 5000, "connections to open")
	path := flag.String("path", "/", "request path of each connection's one request")
	parallel := flag.Int("parallel", 64, "connections being opened at once")
	hold := flag.Duration("hold", time.Minute, "how long to hold the connections open")
	flag.Parse()

	var (
		mu     sync.Mutex
		open   []net.Conn
		failed atomic.Int64
		first  atomic.Value // the first error, for the report
		wg     sync.WaitGroup
		slots  = make(chan struct{}, *parallel)
	)
	for range *n {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			c, err := dial(*addr, *path)
			if err != nil {
				failed.Add(1)
				first.CompareAndSwap(nil, err.Error())
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		fmt.Fprintf(os.Stderr, "conns: %d connections failed, the first: %v\n", f, first.Load())
	}
	fmt.Printf("open %d\n", len(open))

	// A connection the server closes becomes readable (EOF): watch each for that.
	var closed atomic.Int64
	for _, c := range open {
		go func() {
			var b [1]byte
			if _, err := c.Read(b[:]); err != nil {
				closed.Add(1)
			}
		}()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	select {
	case <-sig:
	case <-time.After(*hold):
	}
	fmt.Printf("closed by the server while held: %d\n", closed.Load())
}

// dial opens one connection and makes one request on it, leaving it idle and kept alive.
func dial(addr, path string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr); err != nil {
		c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	if err == nil && resp.Close {
		err = fmt.Errorf("the server closes the connection after an answer")
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}
