package opstateprom

import (
	"github.com/d8da9184/opstate"
	"github.com/prometheus/client_golang/prometheus"
)

// NewStatsCollector returns the collector NewCollector returns, reading
// the counts from stats instead of a Store's Stats.
func NewStatsCollector(stats func() opstate.Stats, storeName string) prometheus.Collector {
	return newCollector(stats, storeName)
}
