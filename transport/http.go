// Package transport exposes the Handle endpoint over HTTP as a catch-all: every method and every
// path reaches the service, including paths such as /metrics that are operational elsewhere. The
// operational endpoints live on the separate admin handler.
package transport

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	kitendpoint "github.com/go-kit/kit/endpoint"
	kittransport "github.com/go-kit/kit/transport"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/anyroute/anyroute/endpoint"
	"github.com/anyroute/anyroute/service"
)

// Options configure the API handler.
type Options struct {
	MaxBodyBytes int64
	Instance     string                // echoed as "instance": the pod or host name
	Before       []kithttp.RequestFunc // e.g. extracting incoming trace context
	Logger       log.Logger            // errors before the endpoint runs are logged at level warn
	// HangFor bounds a hang fault: the connection is closed after it if the client has not left
	// (http.write_timeout, which a hijacked connection no longer has); 0 is no bound.
	HangFor time.Duration
	// ClientIdentity echoes the subject of each request's verified client certificate (mTLS,
	// ClientSubject); off, nothing is looked up. It rides in the context, not in the request, so
	// that the request every answer allocates stays in its size class.
	ClientIdentity bool
}

// NewHTTPHandler returns the catch-all API handler over the Handle endpoint.
func NewHTTPHandler(ep kitendpoint.Endpoint, o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	opts := []kithttp.ServerOption{
		kithttp.ServerErrorEncoder(encodeError),
		kithttp.ServerErrorHandler(kittransport.NewLogErrorHandler(
			log.With(level.Warn(o.Logger), "msg", "request failed in transport"))),
		kithttp.ServerBefore(o.Before...),
	}
	return closeRiskyFraming(kithttp.NewServer(ep, decodeRequest(o.MaxBodyBytes), encodeResponse(o.Instance, o.HangFor, o.ClientIdentity), opts...))
}

// closeRiskyFraming closes the connection after answering a request whose body framing a proxy in
// front might have read differently: a chunked body, which net/http accepts even beside a
// Content-Length (and then drops that header, so the handler cannot see the classic smuggling
// shape itself), and any body on HTTP/1.0, where net/http ignores Transfer-Encoding. RFC 9112
// 6.1 asks exactly this of a server that processes such a message; the cost is that chunked
// uploads, rare in load tests, get no keep-alive.
func closeRiskyFraming(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) > 0 || (r.ProtoAtLeast(1, 0) && !r.ProtoAtLeast(1, 1) && r.ContentLength != 0) {
			w.Header()["Connection"] = closeConnection
		}
		next.ServeHTTP(w, r)
	})
}

// decodeRequest reads the body only to count it and to enforce the limit: a body past the limit is
// never buffered, the service answers 413 for it, and 400 for one that cannot be read. Every answer
// thus comes from the service, and is counted there.
func decodeRequest(maxBody int64) kithttp.DecodeRequestFunc {
	return func(_ context.Context, r *http.Request) (any, error) {
		h := r.Header
		req := &endpoint.HandleRequest{Request: service.Request{
			Method:         r.Method,
			Path:           r.URL.Path,
			Query:          r.URL.RawQuery,
			RequestID:      requestID(h[HeaderRequestID]),
			Hops:           hops(h[HeaderHops]),
			OverrideStatus: first(h[HeaderOverrideStatus]),
			OverrideDelay:  first(h[HeaderOverrideDelay]),
		}}
		if r.Body == nil || r.Body == http.NoBody {
			return req, nil
		}
		if r.ContentLength > maxBody {
			req.BodyTooLarge = true
			return req, nil
		}
		n, err := io.Copy(io.Discard, io.LimitReader(r.Body, maxBody+1))
		if n > maxBody {
			req.BodyTooLarge = true
			n = maxBody
		} else if err != nil {
			req.BodyBroken = true
		}
		req.BodyBytes = n
		return req, nil
	}
}

// Headers by which a request overrides its rule's status and delay, where the rule allows it.
const (
	HeaderOverrideStatus = "X-Anyroute-Status"
	HeaderOverrideDelay  = "X-Anyroute-Delay"
)

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// maxRequestID bounds the caller's x-request-id the service adopts, echoes and forwards.
const maxRequestID = 128

// requestID is the caller's x-request-id when it is a plain token (letters, digits and ._:-), at
// most maxRequestID bytes; anything else is dropped and the service gives the request an id.
func requestID(vs []string) string {
	id := first(vs)
	if len(id) > maxRequestID {
		return ""
	}
	for i := 0; i < len(id); i++ {
		if !tokenByte(id[i]) {
			return ""
		}
	}
	return id
}

// tokenByte reports whether c may be in a request id: a letter, a digit, or one of ._:-.
func tokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '.' || c == '_' || c == ':' || c == '-'
}

// hops reads the hop count a calling anyroute sent; anything but a small number is 0.
func hops(vs []string) int32 {
	v := first(vs)
	if v == "" { // most requests: skip the error Atoi would allocate
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return int32(min(n, math.MaxInt32)) // past any max_hops, and not wrapped round below it
}

var (
	jsonContentType = []string{"application/json"}
	closeConnection = []string{"close"}
	bufPool         = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
	noRequest       service.Request // echoed for a response that carries no request
)

// encodeResponse writes the JSON echo with the status the service decided, or carries out the
// fault it decided instead (faults.go). The body is built by hand into a pooled buffer: it is the
// hottest code of the service and encoding/json would allocate on every request.
func encodeResponse(instance string, hangFor time.Duration, identity bool) kithttp.EncodeResponseFunc {
	return func(ctx context.Context, w http.ResponseWriter, response any) error {
		resp := response.(*endpoint.HandleResponse)
		if resp.Fault != nil && breaksConnection(resp.Fault.Kind) {
			return breakConnection(ctx, w, resp.Fault.Kind, hangFor)
		}
		h := w.Header()
		switch {
		case errors.Is(resp.Err, service.ErrBodyTooLarge) || errors.Is(resp.Err, service.ErrBadBody):
			h["Connection"] = closeConnection // the unread rest of the body is not worth draining
		case resp.Status == service.StatusTooManyRequests:
			if v := retryAfter(resp.Err); v != nil {
				h["Retry-After"] = v
			}
		}
		if bodiless(resp.Status) {
			w.WriteHeader(resp.Status)
			return nil
		}
		req := resp.Request
		if req == nil {
			req = &noRequest
		}
		bp := bufPool.Get().(*[]byte)
		defer putBuf(bp)
		b := (*bp)[:0]
		b = append(b, `{"method":`...)
		b = appendString(b, req.Method)
		b = append(b, `,"path":`...)
		b = appendString(b, req.Path)
		b = append(b, `,"query":`...)
		b = appendString(b, req.Query)
		b = append(b, `,"route":`...)
		b = appendString(b, resp.Route)
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(resp.Status), 10)
		b = append(b, `,"instance":`...)
		b = appendString(b, instance)
		b = append(b, `,"trace_id":`...)
		b = appendString(b, req.TraceID)
		b = append(b, `,"request_id":`...)
		b = appendString(b, resp.RequestID)
		if subject := clientSubjectIf(ctx, identity); subject != "" {
			b = append(b, `,"client_subject":`...)
			b = appendString(b, subject)
		}
		if len(resp.Calls) > 0 {
			b = appendCalls(b, resp.Calls)
		}
		if resp.Err != nil {
			b = append(b, `,"error":`...)
			b = appendString(b, publicMessage(resp.Err, resp.Status))
		}
		if resp.Padding > 0 {
			b = append(b, `,"padding":"`...)
			b = appendPadding(b, resp.Padding)
			b = append(b, '"')
		}
		b = append(b, "}\n"...)
		*bp = b
		h["Content-Type"] = jsonContentType
		if resp.RequestID != "" {
			h[HeaderRequestID] = []string{resp.RequestID}
		}
		if resp.Fault != nil {
			return writeFaulty(ctx, w, resp.Status, b, resp.Fault)
		}
		w.WriteHeader(resp.Status)
		_, err := w.Write(b)
		return err
	}
}

// appendCalls appends the calls a request made, each with the upstream's own answer nested.
func appendCalls(b []byte, calls []service.CallResult) []byte {
	b = append(b, `,"calls":[`...)
	for i, c := range calls {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, c.Name)
		b = append(b, `,"url":`...)
		b = appendString(b, c.URL)
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(c.Status), 10)
		b = append(b, `,"duration_seconds":`...)
		b = strconv.AppendFloat(b, c.Duration.Seconds(), 'f', -1, 64)
		if c.Err != nil {
			b = append(b, `,"error":`...)
			b = appendString(b, publicMessage(c.Err, 0))
		}
		if c.Answer != nil { // valid JSON in valid UTF-8 of a bounded size, checked by the client
			b = append(b, `,"answer":`...)
			b = append(b, c.Answer...)
		} else if c.AnswerOmitted != "" {
			b = append(b, `,"answer_omitted":`...)
			b = appendString(b, c.AnswerOmitted)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// putBuf returns a buffer to the pool unless a large padding grew it: pooling those would pin
// megabytes for the sake of rare requests.
func putBuf(bp *[]byte) {
	if cap(*bp) <= 64<<10 {
		bufPool.Put(bp)
	}
}

// bodiless reports whether an answer of this status carries no content: net/http refuses a body
// for 204 and 304, and RFC 9110 forbids one for 205.
func bodiless(status int) bool {
	return status == http.StatusNoContent || status == http.StatusResetContent || status == http.StatusNotModified
}

// namedErrors are the business errors a client learns by name.
var namedErrors = []error{service.ErrInjected, service.ErrBodyTooLarge, service.ErrBadBody, service.ErrStopping,
	service.ErrLoop, service.ErrRateLimited, service.ErrCallTimeout, service.ErrNoAnswer, service.ErrUnsafePath, service.ErrCallLimit,
	context.Canceled}

// publicMessage is what a client may learn of an error: a business error by its name (never what
// wraps it), a failed call or a refused override by what the service made of it (config names and
// status codes), anything else only by its status text, so internal details never leak.
func publicMessage(err error, status int) string {
	var callErr *service.CallError
	var overrideErr *service.OverrideError
	switch {
	case errors.As(err, &callErr):
		return callErr.Error()
	case errors.As(err, &overrideErr):
		return overrideErr.Error()
	}
	for _, named := range namedErrors {
		if errors.Is(err, named) {
			return named.Error()
		}
	}
	if text := http.StatusText(status); text != "" {
		return text
	}
	return "error"
}

// encodeError answers the errors go-kit's server raises outside the service, which nothing in
// the decoder or the endpoint returns today: 500 and the status text, never the error itself.
func encodeError(_ context.Context, _ error, w http.ResponseWriter) {
	status := http.StatusInternalServerError
	b := append([]byte(`{"error":`), appendString(nil, http.StatusText(status))...)
	b = append(b, "}\n"...)
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
