// Package transport exposes the Handle endpoint over HTTP as a catch-all: every method and every
// path reaches the service, including paths such as /metrics that are operational elsewhere. The
// operational endpoints live on the separate admin handler.
package transport

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"

	kitendpoint "github.com/go-kit/kit/endpoint"
	kittransport "github.com/go-kit/kit/transport"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/anyroute/anyroute/endpoint"
	"github.com/anyroute/anyroute/service"
)

// ErrBadBody means the request body could not be read (the client broke off or sent bad chunking).
var ErrBadBody = errors.New("request body could not be read")

// Options configure the API handler.
type Options struct {
	MaxBodyBytes int64
	Instance     string                // echoed as "instance": the pod or host name
	Before       []kithttp.RequestFunc // e.g. extracting incoming trace context
	Logger       log.Logger            // errors before the endpoint runs are logged at level warn
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
	return kithttp.NewServer(ep, decodeRequest(o.MaxBodyBytes), encodeResponse(o.Instance), opts...)
}

// decodeRequest reads the body only to count it and to enforce the limit: a body past the limit is
// never buffered, the service answers 413 for it.
func decodeRequest(maxBody int64) kithttp.DecodeRequestFunc {
	return func(_ context.Context, r *http.Request) (any, error) {
		req := &endpoint.HandleRequest{Request: service.Request{
			Method: r.Method,
			Path:   r.URL.Path,
			Query:  r.URL.RawQuery,
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
			return nil, errors.Join(ErrBadBody, err)
		}
		req.BodyBytes = n
		return req, nil
	}
}

var (
	jsonContentType = []string{"application/json"}
	closeConnection = []string{"close"}
	bufPool         = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
)

// encodeResponse writes the JSON echo with the status the service decided. The body is built by
// hand into a pooled buffer: it is the hottest code of the service and encoding/json would
// allocate on every request.
func encodeResponse(instance string) kithttp.EncodeResponseFunc {
	return func(_ context.Context, w http.ResponseWriter, response any) error {
		resp := response.(*endpoint.HandleResponse)
		bp := bufPool.Get().(*[]byte)
		defer putBuf(bp)
		b := (*bp)[:0]
		b = append(b, `{"method":`...)
		b = appendString(b, resp.Request.Method)
		b = append(b, `,"path":`...)
		b = appendString(b, resp.Request.Path)
		b = append(b, `,"query":`...)
		b = appendString(b, resp.Request.Query)
		b = append(b, `,"route":`...)
		b = appendString(b, resp.Route)
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(resp.Status), 10)
		b = append(b, `,"instance":`...)
		b = appendString(b, instance)
		b = append(b, `,"trace_id":`...)
		b = appendString(b, resp.TraceID)
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
		h := w.Header()
		h["Content-Type"] = jsonContentType
		if errors.Is(resp.Err, service.ErrBodyTooLarge) {
			h["Connection"] = closeConnection // the unread rest of the body is not worth draining
		}
		w.WriteHeader(resp.Status)
		_, err := w.Write(b)
		return err
	}
}

// putBuf returns a buffer to the pool unless a large padding grew it: pooling those would pin
// megabytes for the sake of rare requests.
func putBuf(bp *[]byte) {
	if cap(*bp) <= 64<<10 {
		bufPool.Put(bp)
	}
}

// publicMessage is what a client may learn of an error: business errors by name, anything else only
// by its status text, so internal details never leak.
func publicMessage(err error, status int) string {
	switch {
	case errors.Is(err, service.ErrInjected), errors.Is(err, service.ErrBodyTooLarge):
		return err.Error()
	default:
		return http.StatusText(status)
	}
}

// encodeError answers errors raised before the service ran (decoding). It is the one place that
// maps such errors to statuses.
func encodeError(_ context.Context, err error, w http.ResponseWriter) {
	status := http.StatusInternalServerError
	if errors.Is(err, ErrBadBody) {
		status = http.StatusBadRequest
	}
	msg := http.StatusText(status)
	if status < 500 {
		msg = ErrBadBody.Error()
	}
	b := append([]byte(`{"error":`), appendString(nil, msg)...)
	b = append(b, "}\n"...)
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
