package service

import (
	"cmp"
	"fmt"
	"net/url"
	"strconv"
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
		q, err := url.ParseQuery(req.Query)
		if err != nil {
			return o, &OverrideError{Reason: "query does not parse"}
		}
		status, delay = cmp.Or(status, q.Get("status")), cmp.Or(delay, q.Get("delay"))
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
