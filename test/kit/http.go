package kit

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anyroute/anyroute/transport"
)

// NewClient returns an HTTP client that never uses a proxy (the tests talk to loopback and to
// their own containers only) and accepts the tests' own throwaway certificates.
func NewClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // test certificates only
	return &http.Client{Timeout: timeout, Transport: tr}
}

// Client is the tests' HTTP client; pollClient, with a shorter timeout, asks whether a server is
// ready yet.
var (
	Client     = NewClient(30 * time.Second)
	pollClient = NewClient(2 * time.Second)
)

// Get returns the status and body of a GET, or 0 and the error when there was no answer.
func Get(url string) (int, string) {
	return Do(context.Background(), http.MethodGet, url, nil, nil)
}

// Do is Get for any method, headers and body.
func Do(ctx context.Context, method, url string, header http.Header, body io.Reader) (int, string) {
	return do(Client, ctx, method, url, header, body)
}

func do(client *http.Client, ctx context.Context, method, url string, header http.Header, body io.Reader) (int, string) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, err.Error()
	}
	if header != nil {
		req.Header = header
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// GetJSON decodes the JSON answer of a GET, which must be 200.
func GetJSON(ctx context.Context, url string, v any) error {
	code, body := Do(ctx, http.MethodGet, url, nil, nil)
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %.300s", url, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		return fmt.Errorf("GET %s: %w: %.300s", url, err, body)
	}
	return nil
}

// ParseEcho decodes an answer of the API as transport.Echo, the echo's one definition. A field
// that type does not have is an error: the hand-written encoder must not drift from it.
func ParseEcho(body string) (transport.Echo, error) {
	var e transport.Echo
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("not the JSON echo: %w: %.300s", err, body)
	}
	if rest, _ := io.ReadAll(dec.Buffered()); len(bytes.TrimSpace(rest)) > 0 {
		return e, fmt.Errorf("not the JSON echo: %q after it", rest)
	}
	return e, nil
}

// Echo sends a request and returns its status and echo, failing the test when there is no
// answer or it is not an echo.
func Echo(t testing.TB, method, url string, header http.Header) (int, transport.Echo) {
	t.Helper()
	code, body := Do(context.Background(), method, url, header, nil)
	if code == 0 {
		t.Fatalf("%s %s: %s", method, url, body)
	}
	e, err := ParseEcho(body)
	if err != nil {
		t.Fatalf("%s %s: %d: %v", method, url, code, err)
	}
	return code, e
}

// WaitHTTP polls GET url (with header, if any) until it answers 200. It fails the test at the
// deadline with the last answer, or at once when p (if not nil) has ended.
func WaitHTTP(t testing.TB, p *Proc, url string, header http.Header, timeout time.Duration) {
	t.Helper()
	what := url + " to answer 200"
	if p != nil {
		what = p.Name + ": " + what
	}
	WaitUntil(t, timeout, what, func() (bool, string, error) {
		if p != nil {
			if ended, err := p.Exited(); ended {
				return false, "", fmt.Errorf("%s ended (%w); its output ends:\n%s", p.Name, err, p.Tail(40))
			}
		}
		code, body := do(pollClient, context.Background(), http.MethodGet, url, header.Clone(), nil)
		if code == http.StatusOK {
			return true, "", nil
		}
		state := fmt.Sprintf("%d %.200s", code, strings.TrimSpace(body))
		if p != nil {
			state += "; output ends:\n" + p.Tail(40)
		}
		return false, state, nil
	})
}
