package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Status is the verdict on one link of the chain.
type Status string

// A link passes, fails (the chain is broken there), warns (it works but will not do what the
// user likely wants, e.g. a target no traffic reaches) or is skipped (it does not apply, or what
// it needs could not be read).
const (
	Pass Status = "pass"
	Warn Status = "warn"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Link is one step of the chain from the pods to the HPA, as the doctor found it.
type Link struct {
	Name     string `json:"name"`
	Status   Status `json:"status"`
	Evidence string `json:"evidence"`
	Hint     string `json:"hint,omitempty"`
}

// Report is what one run of the doctor found, in chain order.
type Report struct {
	Namespace  string `json:"namespace"`
	Release    string `json:"release"`
	Path       string `json:"path"` // "prometheus-adapter" or "keda", once known
	Prometheus string `json:"prometheus,omitempty"`
	Links      []Link `json:"links"`
	// FirstBroken names the first failing link; FirstProblem the first that fails or warns.
	FirstBroken  string `json:"first_broken,omitempty"`
	FirstProblem string `json:"first_problem,omitempty"`
	Healthy      bool   `json:"healthy"`
	// Comparison is the live timeline against a prediction (-predict-load), when asked for.
	Comparison *Comparison `json:"comparison,omitempty"`
}

func (r *Report) add(l Link) {
	r.Links = append(r.Links, l)
}

// finish fills in the verdicts that follow from the links.
func (r *Report) finish() {
	r.Healthy = true
	for _, l := range r.Links {
		if l.Status == Fail && r.FirstBroken == "" {
			r.FirstBroken = l.Name
			r.Healthy = false
		}
		if (l.Status == Fail || l.Status == Warn) && r.FirstProblem == "" {
			r.FirstProblem = l.Name
		}
	}
}

// writeText prints one line per link, its hint indented below it, and a closing verdict.
func (r *Report) writeText(w io.Writer) {
	width := 0
	for _, l := range r.Links {
		width = max(width, len(l.Name))
	}
	fmt.Fprintf(w, "anyroute doctor: release %s in namespace %s", r.Release, r.Namespace)
	if r.Path != "" {
		fmt.Fprintf(w, " (%s path)", r.Path)
	}
	fmt.Fprintln(w)
	for _, l := range r.Links {
		fmt.Fprintf(w, "%-4s  %-*s  %s\n", strings.ToUpper(string(l.Status)), width, l.Name, l.Evidence)
		if l.Hint != "" {
			fmt.Fprintf(w, "      %*s  hint: %s\n", width, "", l.Hint)
		}
	}
	switch {
	case r.FirstBroken != "":
		fmt.Fprintf(w, "first broken link: %s\n", r.FirstBroken)
	case r.FirstProblem != "":
		fmt.Fprintf(w, "no broken link; look at %s\n", r.FirstProblem)
	default:
		fmt.Fprintln(w, "every link holds")
	}
	if r.Comparison != nil {
		r.Comparison.writeText(w)
	}
}

func (r *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
