package predict

import (
	"bytes"
	"encoding/xml"
	"testing"
	"time"
)

// A live run's readings are drawn over the prediction as dots, one per link read in each reading
// up to the prediction's end; the prediction alone has none.
func TestSVGDrawsTheObservedReadings(t *testing.T) {
	a, load, d, p := compareSetup(t)
	obs := observe(t, a, load, d, nil)
	obs[1].HasRate, obs[2].HasMetric, obs[3].Replicas = false, false, -1 // links not read
	obs = append(obs, Observed{T: p.Timeline.End + 10*time.Second, Rate: 1, HasRate: true, Replicas: 1, Ready: 1})
	want := 0
	for _, o := range obs {
		if o.T > p.Timeline.End {
			continue
		}
		for _, read := range []bool{o.HasRate, o.HasMetric, o.Replicas >= 0, o.Ready >= 0} {
			if read {
				want++
			}
		}
	}
	count := func(obs []Observed) int {
		t.Helper()
		var b bytes.Buffer
		if err := p.WriteSVGObserved(&b, obs); err != nil {
			t.Fatal(err)
		}
		var pic struct {
			Circles []struct {
				Class string `xml:"class,attr"`
			} `xml:"circle"`
		}
		if err := xml.Unmarshal(b.Bytes(), &pic); err != nil {
			t.Fatalf("the SVG is not well-formed: %v", err)
		}
		n := 0
		for _, c := range pic.Circles {
			if c.Class == "observed" {
				n++
			}
		}
		return n
	}
	if got := count(obs); got != want {
		t.Errorf("%d dots for the readings, want %d", got, want)
	}
	if got := count(nil); got != 0 {
		t.Errorf("the prediction alone has %d dots", got)
	}
}
