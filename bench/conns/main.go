// Command conns opens many idle keep-alive connections to an HTTP server, for the memory figures of
// the bench driver (bench/driver): each connection sends one GET, reads its whole answer and stays
// open, idle, as a kept-alive client connection does between requests. Once every connection is
// open it prints "open N" (N the connections that got an answer) and holds them until -hold passes
// or it is signalled; connections the server closes meanwhile are counted and printed at the end.
// Signalled while still opening, it prints how many it had opened.
//
// -source gives the connections a local address of their own (any of 127.0.0.0/8 on loopback):
// tens of thousands of connections closed by earlier runs linger in TIME_WAIT on the client's
// side, and the kernel's search for a free ephemeral port of 127.0.0.1 slows down with them.
//
//	conns -addr 127.0.0.1:18190 -source 127.0.1.1 -n 5000 -path /bench/x -hold 60s
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
	source := flag.String("source", "", "local IP address of the connections (default: the system's choice)")
	flag.Parse()
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if *source != "" {
		ip := net.ParseIP(*source)
		if ip == nil {
			fmt.Fprintf(os.Stderr, "conns: -source %q is not an IP address\n", *source)
			os.Exit(2)
		}
		dialer.LocalAddr = &net.TCPAddr{IP: ip}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)

	var (
		mu     sync.Mutex
		open   []net.Conn
		failed atomic.Int64
		first  atomic.Value // the first error, for the report
		wg     sync.WaitGroup
		slots  = make(chan struct{}, *parallel)
	)
	stopped := false
	for i := 0; i < *n && !stopped; i++ {
		select {
		case slots <- struct{}{}:
		case <-sig:
			stopped = true
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			c, err := dial(dialer, *addr, *path)
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
	if stopped {
		fmt.Fprintf(os.Stderr, "conns: signalled after opening %d of %d connections\n", len(open), *n)
		return
	}

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
	select {
	case <-sig:
	case <-time.After(*hold):
	}
	fmt.Printf("closed by the server while held: %d\n", closed.Load())
}

// dial opens one connection and makes one request on it, leaving it idle and kept alive.
func dial(d *net.Dialer, addr, path string) (net.Conn, error) {
	c, err := d.Dial("tcp", addr)
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
