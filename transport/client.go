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
	"unicode/utf8"

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
		kithttp.SetClient(&http.Client{Transport: tr, CheckRedirect: noRedirects}),
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

// noRedirects makes a redirect the call's answer: the 3xx is the status the call reports, and its
// Location is never followed. Following it would let an upstream send the call anywhere, to the
// admin port of the calling process included, and nest what it answers in the echo; a call goes
// where the config points it, and only there.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Call makes one call and reports how it went; it never fails itself.
func (c *caller) Call(ctx context.Context, req service.CallRequest) service.CallResult {
	u, ok := expand(req.URL, req.Path)
	res := service.CallResult{Name: req.Name, URL: u}
	if !ok {
		res.Err = service.ErrUnsafePath
		return res
	}
	req.URL = res.URL
	callCtx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	begin := time.Now()
	out, err := c.call(callCtx, req)
	res.Duration = time.Since(begin)
	switch {
	case err == nil:
		answer := out.(callAnswer)
		res.Status, res.Answer, res.AnswerOmitted = answer.status, answer.body, answer.omitted
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
	status  int
	body    []byte // JSON, valid UTF-8, of at most MaxAnswerBytes, else nil
	omitted string // why a body that came is not kept
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

// decodeCall keeps the answer's body to nest in the echo when it is JSON in valid UTF-8 (json.Valid
// alone lets invalid UTF-8 through inside strings, which would make the echo invalid) of at most
// MaxAnswerBytes; otherwise it says why not.
func decodeCall(_ context.Context, resp *http.Response) (any, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, service.MaxAnswerBytes+1))
	tooLarge := err == nil && len(body) > service.MaxAnswerBytes
	if tooLarge {
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBytes)) // keep the connection
	}
	if err != nil {
		return nil, err
	}
	answer := callAnswer{status: resp.StatusCode}
	switch {
	case tooLarge:
		answer.omitted = answerTooLarge
	case len(body) == 0:
	case !utf8.Valid(body):
		answer.omitted = "not valid UTF-8"
	case !json.Valid(body):
		answer.omitted = "not JSON"
	default:
		answer.body = body
	}
	return answer, nil
}

var answerTooLarge = "larger than " + strconv.Itoa(service.MaxAnswerBytes) + " bytes"

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// expand puts the incoming path, without its leading slash and escaped, where the URL says {path},
// and reports false, with the template unexpanded, when the path has a dot segment, which would
// take the call out of the configured URL's path. A path that needs no escaping, the common case,
// costs the expanded URL's one allocation and no other.
func expand(template, path string) (string, bool) {
	if !strings.Contains(template, "{path}") {
		return template, true
	}
	path = strings.TrimPrefix(path, "/")
	plain := true // no segment needs escaping: the path goes in as it is
	for seg := range strings.SplitSeq(path, "/") {
		if dotSegment(seg) {
			return template, false
		}
		plain = plain && url.PathEscape(seg) == seg // PathEscape returns seg itself when it can
	}
	if !plain {
		var b strings.Builder
		for i, seg := range strings.Split(path, "/") {
			if i > 0 {
				b.WriteByte('/')
			}
			b.WriteString(url.PathEscape(seg))
		}
		path = b.String()
	}
	return strings.ReplaceAll(template, "{path}", path), true
}

// dotSegment reports whether a segment of the decoded incoming path is, or hides, "." or "..": as
// itself (net/http has already decoded %2e%2e and %2F), once more percent-decoded (an upstream or
// a proxy that decodes twice would see %252e%252e as ..), or with a backslash read as a slash, as
// some servers read it. Such a segment has no business in a path passed along, so the call is
// refused rather than cleaned: cleaning would call another URL than the one the client named.
func dotSegment(seg string) bool {
	for range 3 { // decoding layers: a segment is short, and three is past any real proxy chain
		for part := range strings.FieldsFuncSeq(seg, func(r rune) bool { return r == '/' || r == '\\' }) {
			if part == "." || part == ".." {
				return true
			}
		}
		decoded, err := url.PathUnescape(seg)
		if err != nil || decoded == seg {
			return false
		}
		seg = decoded
	}
	return false
}
