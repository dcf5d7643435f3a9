package kit

import (
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestScrapeConfig: the config the tests share decodes to the jobs, targets, labels and rule files
// it was given, quoted so that an address or a label value is never read as YAML of its own.
func TestScrapeConfig(t *testing.T) {
	cfg := ScrapeConfig([]string{"/tmp/a rules.yml"},
		ScrapeJob{Name: "anyroute", Targets: []ScrapeTarget{
			{Addr: "127.0.0.1:8081", Labels: map[string]string{"pod": "p-1", "namespace": "demo"}},
			{Addr: "127.0.0.1:8082"},
		}},
		ScrapeJob{Name: "kube-state-metrics", HonorLabels: true, Targets: []ScrapeTarget{{Addr: "127.0.0.1:9000", Labels: map[string]string{"x": "yes: no"}}}},
	)
	type static struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels,omitempty"`
	}
	type job struct {
		JobName       string   `json:"job_name"`
		HonorLabels   bool     `json:"honor_labels,omitempty"`
		StaticConfigs []static `json:"static_configs"`
	}
	var got struct {
		Global map[string]string `json:"global"`
		Rules  []string          `json:"rule_files"`
		Jobs   []job             `json:"scrape_configs"`
	}
	if err := yaml.UnmarshalStrict([]byte(cfg), &got); err != nil {
		t.Fatalf("%v\n%s", err, cfg)
	}
	want := []job{
		{JobName: "anyroute", StaticConfigs: []static{
			{Targets: []string{"127.0.0.1:8081"}, Labels: map[string]string{"namespace": "demo", "pod": "p-1"}},
			{Targets: []string{"127.0.0.1:8082"}},
		}},
		{JobName: "kube-state-metrics", HonorLabels: true, StaticConfigs: []static{
			{Targets: []string{"127.0.0.1:9000"}, Labels: map[string]string{"x": "yes: no"}},
		}},
	}
	if !reflect.DeepEqual(got.Jobs, want) || !reflect.DeepEqual(got.Rules, []string{"/tmp/a rules.yml"}) ||
		got.Global["scrape_interval"] != "1s" || got.Global["evaluation_interval"] != "1s" {
		t.Fatalf("ScrapeConfig gave\n%s\ndecoded %+v", cfg, got)
	}
}
