package main

import (
	"strings"
	"testing"
	"time"
)

// Each count the driver needs above 0, and each window that is not whole seconds, is refused
// alone, with its flag named.
func TestValidateNamesTheFlag(t *testing.T) {
	good := options{pairs: 1, window: time.Second, warmup: time.Second, connections: 8, h2Conns: 2,
		scrapeRounds: 1, scrapers: 1, scrapeRate: 1}
	if err := good.validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for _, c := range []struct {
		flag string
		set  func(*options)
	}{
		{"-pairs 0", func(o *options) { o.pairs = 0 }},
		{"-connections 0", func(o *options) { o.connections, o.h2Conns = 0, 0 }},
		{"-h2-connections 0", func(o *options) { o.h2Conns = 0 }},
		{"-scrape-rounds 0", func(o *options) { o.scrapeRounds = 0 }},
		{"-scrapers 0", func(o *options) { o.scrapers = 0 }},
		{"-scrape-rate -1", func(o *options) { o.scrapeRate = -1 }},
	} {
		o := good
		c.set(&o)
		if err := o.validate(); err == nil || !strings.Contains(err.Error(), c.flag+": must be positive") {
			t.Errorf("%s: %v, want it named", c.flag, err)
		}
	}
	for _, c := range []struct {
		flag string
		set  func(*options)
	}{
		{"-window 1.5s", func(o *options) { o.window = 1500 * time.Millisecond }},
		{"-warmup 0s", func(o *options) { o.warmup = 0 }},
	} {
		o := good
		c.set(&o)
		if err := o.validate(); err == nil || !strings.Contains(err.Error(), c.flag+": want whole seconds") {
			t.Errorf("%s: %v, want it named", c.flag, err)
		}
	}
}
