package predict

import (
	"fmt"
	"strings"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/service"
)

// share is one route's part of the load, with the rule it runs.
type share struct {
	Name   string
	Weight float64 // a fraction: the shares sum to 1
	Rule   service.Rule
}

// shares splits the load over cfg's routes: by the load's weights, evenly without them; a config
// without routes sends everything to the catch-all, which costs nothing.
func shares(cfg config.Config, l Load) ([]share, error) {
	rules := map[string]service.Rule{}
	var names []string
	for _, r := range cfg.Routes {
		rules[r.Name] = r.Rule(cfg.HTTP)
		names = append(names, r.Name)
	}
	if len(names) == 0 {
		if len(l.Routes) > 0 {
			return nil, fmt.Errorf("load: routes %s: the config has no routes", strings.Join(sortedNames(l.Routes), ", "))
		}
		return []share{{Name: "other", Weight: 1}}, nil
	}
	weights := l.Routes
	if len(weights) == 0 {
		weights = map[string]float64{}
		for _, n := range names {
			weights[n] = 1
		}
	}
	total := 0.0
	for _, n := range sortedNames(weights) {
		if _, ok := rules[n]; !ok {
			return nil, fmt.Errorf("load: /routes/%s: the config has no route %q (its routes: %s)", n, n, strings.Join(names, ", "))
		}
		total += weights[n]
	}
	if total <= 0 {
		return nil, fmt.Errorf("load: the route weights add up to 0")
	}
	var out []share
	for _, n := range sortedNames(weights) {
		if w := weights[n]; w > 0 {
			out = append(out, share{Name: n, Weight: w / total, Rule: rules[n]})
		}
	}
	return out, nil
}

// cpuOf is the CPU a request costs on average over the shares.
func cpuOf(ss []share) float64 {
	c := 0.0
	for _, s := range ss {
		c += s.Weight * s.Rule.CPU.Average().Seconds()
	}
	return c
}
