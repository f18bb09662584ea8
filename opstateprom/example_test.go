package opstateprom_test

import (
	"bufio"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/opstateprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// A service registers the collector of its Store and serves /metrics;
// Prometheus scrapes it. Here an httptest.Server stands in for
// http.ListenAndServe, and one GET for the scrape.
func ExampleNewCollector() {
	s, err := opstate.NewStore(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(opstateprom.NewCollector(s, "state"))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux) // in a service: http.ListenAndServe(":9090", mux)
	defer srv.Close()

	if err := s.Set("flags", "dark_mode", "on"); err != nil {
		log.Fatal(err)
	}
	for range 3 {
		if _, err := s.Get("flags", "dark_mode"); err != nil {
			log.Fatal(err)
		}
	}

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		for _, name := range []string{"opstate_hits_total", "opstate_misses_total", "opstate_writes_total", "opstate_cache_entries"} {
			if strings.HasPrefix(sc.Text(), name+"{") {
				fmt.Println(sc.Text())
			}
		}
	}
	if err := sc.Err(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// opstate_cache_entries{store="state"} 1
	// opstate_hits_total{store="state"} 3
	// opstate_misses_total{store="state"} 0
	// opstate_writes_total{store="state"} 1
}
