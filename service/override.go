package service

import (
	"cmp"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// OverrideError is the business error of a request whose override its rule refuses; it names why.
type OverrideError struct{ Reason string }

func (e *OverrideError) Error() string { return "override refused: " + e.Reason }

// override is what a request asked for, of a rule that allows overrides.
type override struct {
	status   int
	delay    time.Duration
	hasDelay bool
}

// parseOverride reads the status and delay a request asks for: the x-anyroute-* headers, else the
// status and delay query parameters. A status must be a final one (200-599); a delay may not pass
// maxDelay.
func parseOverride(req Request, maxDelay time.Duration) (override, error) {
	var o override
	status, delay := req.OverrideStatus, req.OverrideDelay
	if (status == "" || delay == "") && req.Query != "" {
		qStatus, qDelay, err := queryOverrides(req.Query)
		if err != nil {
			return o, err
		}
		status, delay = cmp.Or(status, qStatus), cmp.Or(delay, qDelay)
	}
	if status != "" {
		n, err := strconv.Atoi(status)
		if err != nil || n < 200 || n > 599 {
			return o, &OverrideError{Reason: fmt.Sprintf("status %.16q: want a number from 200 to 599", status)}
		}
		o.status = n
	}
	if delay != "" {
		d, err := time.ParseDuration(delay)
		switch {
		case err != nil || d < 0:
			return o, &OverrideError{Reason: fmt.Sprintf("delay %.16q: want a duration such as 250ms", delay)}
		case d > maxDelay:
			return o, &OverrideError{Reason: fmt.Sprintf("delay %s: more than the route's max_delay %s", d, maxDelay)}
		}
		o.delay, o.hasDelay = d, true
	}
	return o, nil
}

// queryOverrides returns the first status and delay parameters of a query, as url.Values.Get
// would. Only those two need to parse: the rest of a query is the client's own business (a load
// test's cache buster, a malformed escape), and a route that allows overrides answers it normally
// when it asks for none. Pairs holding a semicolon are skipped, as url.ParseQuery skips them.
func queryOverrides(query string) (status, delay string, err error) {
	var hasStatus, hasDelay bool
	for query != "" && (!hasStatus || !hasDelay) {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		if strings.Contains(pair, ";") {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, kerr := url.QueryUnescape(rawKey)
		if kerr != nil || (key == "status" && hasStatus) || (key == "delay" && hasDelay) || (key != "status" && key != "delay") {
			continue
		}
		value, verr := url.QueryUnescape(rawValue)
		if verr != nil {
			return "", "", &OverrideError{Reason: fmt.Sprintf("query parameter %s does not parse", key)}
		}
		if key == "status" {
			status, hasStatus = value, true
		} else {
			delay, hasDelay = value, true
		}
	}
	return status, delay, nil
}
