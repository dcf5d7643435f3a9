// Package predict is `anyroute predict`: what the chart's autoscaling chain and its alerts should
// do under a load, said before a run so that a run can be checked against it.
//
// It simulates the chain deterministically, in 100 ms steps, from the chart's values, the load's
// stages and the routes of the anyroute config: requests spread over the Ready pods, counted and
// flushed, scraped by Prometheus, rated as PromQL rates them (promrate.go), read by the HPA through
// prometheus-adapter, KEDA or metrics-server, and turned into replicas by the HPA controller's own
// arithmetic (hpa.go). From a scenario it synthesizes the series the alerts read and evaluates the
// chart's burn-rate alerts over them (traffic.go, alerts.go), and writes promtool cases of what it
// found (promtool.go). Compare (compare.go) finds where a live run left the prediction and which
// link explains it; `anyroute doctor -predict-load` reads the live run (instrumenting/doctor,
// timeline.go) and registers this package's inputs as its own flags (Inputs, cli.go).
//
// The files: stages.go (the load: transport/load/stages' schedule and the routes' weights),
// values.go (the chart's values and the adapter's rule), costs.go (the routes' costs), chain.go
// (the simulation), hpa.go, promrate.go, traffic.go, alerts.go, promtool.go, report.go (table and
// JSON), svg.go, cli.go.
// docs/autoscaling.md, "Predicting the timeline", explains the model and its delays.
package predict
