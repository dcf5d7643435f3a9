//go:build !nodoctor

package main

import (
	"io"

	"github.com/anyroute/anyroute/instrumenting/predict"
)

// runPredict is `anyroute predict`: the replica and alert timelines the chart's autoscaler and
// rules should follow under a load (docs/autoscaling.md, "Predicting the timeline"). Like the
// doctor it is a workstation's tool (its YAML and quantity parsing add 1.6 MB the workload never
// uses), so the image's nodoctor build leaves it out too: see predict_off.go.
func runPredict(args []string, stdout, stderr io.Writer) int {
	return predict.Run(args, stdout, stderr)
}
