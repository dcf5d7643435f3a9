package transport

import "encoding/json"

// Echo is the JSON body of every answer the API gives: what the request was and how the route
// rules answered it. encodeResponse writes it by hand, since it is the hottest code of the service;
// this type is its shape for everyone who reads it (clients, the tests, the docs), and a unit test
// holds the two to each other.
type Echo struct {
	Method    string `json:"method"`
	Path      string `json:"path"`  // the decoded URL path
	Query     string `json:"query"` // the raw query string
	Route     string `json:"route"` // the name of the rule that answered, or "other"
	Status    int    `json:"status"`
	Instance  string `json:"instance"`   // POD_NAME, else the host name
	TraceID   string `json:"trace_id"`   // "" when tracing is off
	RequestID string `json:"request_id"` // the caller's x-request-id, or one the service made
	// ClientSubject is the subject of the client certificate verified under mTLS (http.tls
	// client_auth optional or required), absent without one.
	ClientSubject string     `json:"client_subject,omitempty"`
	Calls         []EchoCall `json:"calls,omitempty"`
	Error         string     `json:"error,omitempty"`
	Padding       string     `json:"padding,omitempty"` // body_bytes of filler
}

// EchoCall is one upstream call the request made, with the upstream's own echo nested, so that
// one answer shows the whole call tree.
type EchoCall struct {
	Name            string  `json:"name"`
	URL             string  `json:"url"`
	Status          int     `json:"status"` // 0 when no answer came
	DurationSeconds float64 `json:"duration_seconds"`
	Error           string  `json:"error,omitempty"`
	// Answer is the upstream's JSON answer when it was at most 16 KiB, usually its Echo.
	Answer json.RawMessage `json:"answer,omitempty"`
	// AnswerOmitted says why an answer that came is not nested: "not JSON", "not valid UTF-8",
	// or "larger than 16384 bytes".
	AnswerOmitted string `json:"answer_omitted,omitempty"`
}
