package transport

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	kitendpoint "github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"

	"github.com/anyroute/anyroute/service"
)

// Headers a call carries besides the trace context.
const (
	HeaderRequestID = "X-Request-Id"
	HeaderHops      = "X-Anyroute-Hops"
)

// ClientOptions configure the upstream HTTP client.
type ClientOptions struct {
	Before     []kithttp.RequestFunc        // e.g. injecting the trace context
	After      []kithttp.ClientResponseFunc // e.g. tagging the call's span with the status
	Middleware kitendpoint.Middleware       // around every call, e.g. its client span; nil: none
	// MaxIdleConnsPerHost is how many kept-alive connections to one upstream wait for the next
	// call; past it connections close after a call. 0: 64.
	MaxIdleConnsPerHost int
}

// maxDrainBytes is how much of an answer past MaxAnswerBytes is read to keep the connection for
// the next call; an answer larger still closes it.
const maxDrainBytes = 1 << 20

// NewCaller returns the Caller that makes upstream calls over HTTP through a go-kit client
// endpoint: the Before funcs and the Middleware see every call, connections are kept alive and
// reused, and every call has its own timeout.
func NewCaller(o ClientOptions) service.Caller {
	if o.MaxIdleConnsPerHost == 0 {
		o.MaxIdleConnsPerHost = 64
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // calls go where the config says, never through the environment's proxy
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = o.MaxIdleConnsPerHost
	client := kithttp.NewExplicitClient(encodeCall, decodeCall,
		kithttp.SetClient(&http.Client{Transport: tr}),
		kithttp.ClientBefore(o.Before...),
		kithttp.ClientAfter(o.After...),
	)
	ep := client.Endpoint()
	if o.Middleware != nil {
		ep = o.Middleware(ep)
	}
	return &caller{call: ep}
}

type caller struct{ call kitendpoint.Endpoint }

// Call makes one call and reports how it went; it never fails itself.
func (c *caller) Call(ctx context.Context, req service.CallRequest) service.CallResult {
	res := service.CallResult{Name: req.Name, URL: expand(req.URL, req.Path)}
	req.URL = res.URL
	callCtx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	begin := time.Now()
	out, err := c.call(callCtx, req)
	res.Duration = time.Since(begin)
	switch {
	case err == nil:
		answer := out.(callAnswer)
		res.Status, res.Answer = answer.status, answer.body
	case ctx.Err() != nil: // the request itself ended: the client left, or the server stopped
		res.Err = context.Cause(ctx)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		res.Err = service.ErrCallTimeout
	default:
		res.Err = service.ErrNoAnswer
	}
	return res
}

// callAnswer is what decodeCall keeps of an upstream's answer.
type callAnswer struct {
	status int
	body   []byte // JSON of at most MaxAnswerBytes, else nil
}

func encodeCall(ctx context.Context, request any) (*http.Request, error) {
	req := request.(service.CallRequest)
	r, err := http.NewRequestWithContext(ctx, req.Method, req.URL, http.NoBody)
	if err != nil {
		return nil, err
	}
	r.Header[HeaderRequestID] = []string{req.RequestID}
	r.Header[HeaderHops] = []string{strconv.Itoa(req.Hops)}
	return r, nil
}

func decodeCall(_ context.Context, resp *http.Response) (any, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, service.MaxAnswerBytes+1))
	if err == nil && len(body) > service.MaxAnswerBytes {
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBytes)) // keep the connection
		body = nil
	}
	if err != nil {
		return nil, err
	}
	if !json.Valid(body) {
		body = nil
	}
	return callAnswer{status: resp.StatusCode, body: body}, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// expand puts the incoming path, without its leading slash and escaped, where the URL says {path}.
func expand(template, path string) string {
	if !strings.Contains(template, "{path}") {
		return template
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.ReplaceAll(template, "{path}", strings.Join(segs, "/"))
}
