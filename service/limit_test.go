package service

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// blockingCaller holds every call until release is closed, counting those it got.
type blockingCaller struct {
	mu      sync.Mutex
	got     int
	arrived chan struct{}
	release chan struct{}
}

func (b *blockingCaller) Call(context.Context, CallRequest) CallResult {
	b.mu.Lock()
	b.got++
	b.mu.Unlock()
	b.arrived <- struct{}{}
	<-b.release
	return CallResult{Status: 200}
}

// TestLimitCalls: past the process's bound, or the request tree's, a call is refused at once with
// ErrCallLimit and never reaches the upstream; a slot freed is taken again; another request id
// keeps its own share.
func TestLimitCalls(t *testing.T) {
	next := &blockingCaller{arrived: make(chan struct{}, 100), release: make(chan struct{})}
	c := LimitCalls(5, 3)(next)
	var wg sync.WaitGroup
	results := make(chan CallResult, 100)
	call := func(id string) { wg.Go(func() { results <- c.Call(context.Background(), CallRequest{RequestID: id}) }) }
	for range 3 {
		call("tree")
	}
	for range 3 {
		<-next.arrived
	}
	// The tree holds its 3: a fourth of it is refused, another tree gets the process's 2 left.
	if res := c.Call(context.Background(), CallRequest{RequestID: "tree"}); !errors.Is(res.Err, ErrCallLimit) {
		t.Fatalf("a fourth call of one request tree: %+v, want ErrCallLimit", res)
	}
	call("other")
	call("")
	<-next.arrived
	<-next.arrived
	if res := c.Call(context.Background(), CallRequest{RequestID: "third"}); !errors.Is(res.Err, ErrCallLimit) {
		t.Fatalf("a sixth call in the process: %+v, want ErrCallLimit", res)
	}
	close(next.release)
	wg.Wait()
	close(results)
	for res := range results {
		if res.Err != nil || res.Status != 200 {
			t.Errorf("a call within the bounds: %+v", res)
		}
	}
	if next.got != 5 {
		t.Errorf("%d calls reached the upstream, want 5", next.got)
	}
	l := c.(*callLimit)
	if l.inFlight != 0 || len(l.byRequest) != 0 {
		t.Errorf("after every call: %d in flight, %d request ids kept", l.inFlight, len(l.byRequest))
	}
	next.arrived = make(chan struct{}, 1)
	if res := c.Call(context.Background(), CallRequest{RequestID: "tree"}); res.Err != nil {
		t.Errorf("a call once the slots are free: %+v", res)
	}
}

// TestLimitedCallAnswers503: a route that fails on its calls answers 503 for a call the process's
// bound refused: the overload is the calling process's, not the upstream's.
func TestLimitedCallAnswers503(t *testing.T) {
	f := &fakeCaller{answers: map[string]CallResult{"a": {Err: ErrCallLimit}}}
	s, err := New(f, []Rule{callRule(false, true)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/"}); resp.Status != 503 || !errors.Is(resp.Err, ErrCallLimit) {
		t.Fatalf("%d %v, want 503 too many calls in flight", resp.Status, resp.Err)
	}
}
