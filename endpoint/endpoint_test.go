package endpoint

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/anyroute/anyroute/service"
)

type fixed struct {
	resp service.Response
	err  error
}

func (f fixed) Handle(context.Context, service.Request) (service.Response, error) {
	return f.resp, f.err
}

func TestHandleEndpointCarriesErrorsInTheResponse(t *testing.T) {
	ep := MakeHandleEndpoint(fixed{resp: service.Response{Status: 499, Route: "r"}, err: context.Canceled})
	resp, err := ep(context.Background(), &HandleRequest{Request: service.Request{Method: "GET", Path: "/x"}})
	if err != nil {
		t.Fatalf("the endpoint returned %v; errors ride in the response", err)
	}
	hr := resp.(*HandleResponse)
	if !errors.Is(hr.Failed(), context.Canceled) || hr.Status != 499 || hr.Request.Path != "/x" {
		t.Fatalf("response %+v", hr)
	}
}

func TestAccessLog(t *testing.T) {
	ep := MakeHandleEndpoint(fixed{resp: service.Response{Status: 503, Route: "r", Err: service.ErrInjected}})
	if off := AccessLog(log.NewNopLogger(), 0)(ep); reflect.ValueOf(off).Pointer() != reflect.ValueOf(ep).Pointer() {
		t.Error("sample 0 must return the endpoint unwrapped")
	}
	var logs strings.Builder
	logger := level.NewFilter(log.NewLogfmtLogger(&logs), level.AllowInfo())
	logged := AccessLog(logger, 1)(ep)
	if _, err := logged(context.Background(), &HandleRequest{Request: service.Request{Method: "PUT", Path: "/p", TraceID: "abc"}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"level=info", "method=PUT", "path=/p", "route=r", "status=503", `err="injected failure"`, "trace_id=abc"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("access line lacks %s: %s", want, logs.String())
		}
	}
	logs.Reset()
	faulted := MakeHandleEndpoint(fixed{resp: service.Response{Status: 200, Route: "r", Fault: &service.Fault{Kind: service.FaultReset}}})
	_, _ = AccessLog(logger, 1)(faulted)(context.Background(), &HandleRequest{})
	if !strings.Contains(logs.String(), "fault=reset") {
		t.Errorf("a faulted answer's access line does not name the fault: %s", logs.String())
	}
	// Through a filter that allows only errors, nothing: the level reaches the filter.
	logs.Reset()
	quiet := AccessLog(level.NewFilter(log.NewLogfmtLogger(&logs), level.AllowError()), 1)(ep)
	_, _ = quiet(context.Background(), &HandleRequest{})
	if logs.Len() != 0 {
		t.Errorf("log.level error let an access line through: %s", logs.String())
	}
}

// TestRequestAndResponseKeepTheirSizeClasses: the decoder allocates a HandleRequest and the
// endpoint a HandleResponse for every request; a field that pushes either past the size class it
// fills (128 and 144 bytes on 64-bit) costs every request 16 bytes more. Make room before
// adding one (service.Request packs its small fields into one word, service.Response its latency
// explanation into two; HandleResponse points to its request instead of copying it).
func TestRequestAndResponseKeepTheirSizeClasses(t *testing.T) {
	if n := unsafe.Sizeof(HandleRequest{}); n > 128 {
		t.Errorf("HandleRequest is %d bytes, past 128", n)
	}
	if n := unsafe.Sizeof(HandleResponse{}); n > 144 {
		t.Errorf("HandleResponse is %d bytes, past 144", n)
	}
}
