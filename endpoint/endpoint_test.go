package endpoint

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

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
	if off := AccessLog(log.NewNopLogger(), 0, nil)(ep); reflect.ValueOf(off).Pointer() != reflect.ValueOf(ep).Pointer() {
		t.Error("sample 0 must return the endpoint unwrapped")
	}
	var logs strings.Builder
	logger := level.NewFilter(log.NewLogfmtLogger(&logs), level.AllowInfo())
	logged := AccessLog(logger, 1, func(context.Context) string { return "abc" })(ep)
	if _, err := logged(context.Background(), &HandleRequest{Request: service.Request{Method: "PUT", Path: "/p"}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"level=info", "method=PUT", "path=/p", "route=r", "status=503", `err="injected failure"`, "trace_id=abc"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("access line lacks %s: %s", want, logs.String())
		}
	}
	// Through a filter that allows only errors, nothing: the level reaches the filter.
	logs.Reset()
	quiet := AccessLog(level.NewFilter(log.NewLogfmtLogger(&logs), level.AllowError()), 1, nil)(ep)
	_, _ = quiet(context.Background(), &HandleRequest{})
	if logs.Len() != 0 {
		t.Errorf("log.level error let an access line through: %s", logs.String())
	}
}
