package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// stormRoutes are the scrape storm's routes: each answers 503 to half its requests, so GET and
// POST × 200 and 503 make about 800 request series.
const stormRoutes = 200

// stormConfig is anyroute's config of the scrape storm.
func stormConfig() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\"metrics\": {\"max_routes\": %d}, \"routes\": [\n", stormRoutes)
	for r := range stormRoutes {
		sep := ","
		if r == stormRoutes-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  {\"name\": \"r%03d\", \"match\": \"/r%03d/*\", \"error_rate\": 0.5, \"error_status\": 503}%s\n", r, r, sep)
	}
	b.WriteString("]}\n")
	return b.String()
}

// stormScript makes wrk walk every route with GET and POST in turn.
func stormScript() string {
	return fmt.Sprintf(`local i = 0
request = function()
  i = i + 1
  local method = (math.floor(i / %[1]d) %% 2 == 0) and "GET" or "POST"
  return wrk.format(method, string.format("/r%%03d/x", i %% %[1]d))
end
`, stormRoutes)
}

// stormPhase measures what 16 scrapes a second cost the API: on one warm server a round,
// windows that alternate quiet and storm, where -scrapers scrape /metrics -scrape-rate times a
// second each, as Prometheus does; each storm window is compared with its quiet neighbour.
func (d *driver) stormPhase(ctx context.Context) error {
	cfg, lua := d.path("storm-config.json"), d.path("storm-routes.lua")
	if err := os.WriteFile(cfg, []byte(stormConfig()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(lua, []byte(stormScript()), 0o644); err != nil {
		return err
	}
	perRound := max(1, (d.o.pairs+d.o.scrapeRounds-1)/d.o.scrapeRounds)
	for round := 1; round <= d.o.scrapeRounds; round++ {
		for _, c := range d.res.Run {
			if c.Group != groupScrapes {
				continue
			}
			if err := d.stormServer(ctx, c, round, perRound, cfg, lua); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *driver) stormServer(ctx context.Context, c Case, round, pairs int, cfg, lua string) error {
	bin := d.path("anyroute")
	if c.Ref {
		bin = d.path("baseline")
	}
	api := fmt.Sprintf("127.0.0.1:%d", d.port(c.ID))
	admin := fmt.Sprintf("127.0.0.1:%d", d.adminPort(c.ID))
	cmd, err := d.start(serverCPU, d.path(fmt.Sprintf("%s-%d.log", c.ID, round)), nil, bin,
		"-config", cfg, "-http.addr", api, "-admin.addr", admin)
	if err != nil {
		return err
	}
	defer d.stop(cmd)
	pid := cmd.Process.Pid
	if err := d.waitHTTP(ctx, "http://"+admin+"/readyz"); err != nil {
		return fmt.Errorf("%s: %w", c.ID, err)
	}
	if _, err := d.wrk(ctx, "http://"+api, d.o.warmup, lua, ""); err != nil {
		return err
	}
	time.Sleep(settle) // a flush: every series of the warm-up is on the page
	res := d.res.Storm[c.ID]
	if res == nil {
		res = &stormResult{}
		d.res.Storm[c.ID] = res
	}
	if resp, err := d.client.Get("http://" + admin + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res.Series = float64(strings.Count("\n"+string(b), "\napp_requests_total{"))
	}
	for p := 1; p <= pairs; p++ {
		order := []bool{false, true}
		if (p+round)%2 == 0 {
			order = []bool{true, false}
		}
		for _, storm := range order {
			w, err := d.stormWindow(ctx, c, pid, api, admin, lua, storm, fmt.Sprintf("%s-%d-%d", c.ID, round, p))
			if err != nil {
				return err
			}
			w.Round, w.Pair = round, p
			res.Windows = append(res.Windows, w)
			fmt.Printf("bench: storm round %d pair %d: %s %s: %.0f req/s, p99 %.0f µs, %.2f µs of CPU a request\n",
				round, p, c.Name, map[bool]string{false: "quiet", true: "storm"}[storm], w.RPS, w.P99, w.CPU)
		}
	}
	return nil
}

func (d *driver) stormWindow(ctx context.Context, c Case, pid int, api, admin, lua string, storm bool, slug string) (stormWindow, error) {
	var w stormWindow
	out := d.path(slug + ".scrapes")
	var scrapers interface{ Wait() error }
	if storm {
		_ = os.Remove(out)
		cmd, err := d.start(loadCPU, out, nil, d.path("scrapers"), "-url", "http://"+admin+"/metrics",
			"-n", fmt.Sprint(d.o.scrapers), "-rate", fmt.Sprint(d.o.scrapeRate), "-duration", d.o.window.String())
		if err != nil {
			return w, err
		}
		scrapers = d.waiter(cmd)
	}
	cpu0, err := cpuSeconds(pid)
	if err != nil {
		return w, err
	}
	r, err := d.wrk(ctx, "http://"+api, d.o.window, lua, d.path(slug+".wrk"))
	cpu1, cerr := cpuSeconds(pid)
	if scrapers != nil {
		_ = scrapers.Wait()
		b, _ := os.ReadFile(out)
		w.Scrapes = parseScrapeSummary(lastLines(string(b), 1))
	}
	if err != nil {
		return w, err
	}
	if cerr != nil {
		return w, cerr
	}
	w.Storm, w.RPS, w.P99, w.CPU = storm, r.RPS, r.P99, (cpu1-cpu0)/r.Requests*1e6
	return w, nil
}
