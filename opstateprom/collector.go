package opstateprom

import (
	"github.com/d8da9184/opstate"
	"github.com/prometheus/client_golang/prometheus"
)

// metric is one field of [opstate.Stats] as a Prometheus metric.
type metric struct {
	name  string // without the "opstate_" prefix
	help  string
	typ   prometheus.ValueType
	value func(opstate.Stats) float64
}

// metrics lists every field of opstate.Stats, in its order. The help
// strings restate the fields' doc comments.
var metrics = []metric{
	{"hits_total", "Gets and Lookups answered from the cache, negative entries included.",
		prometheus.CounterValue, func(s opstate.Stats) float64 { return float64(s.Hits) }},
	{"misses_total", "Gets and Lookups that read storage (SQLite or PostgreSQL).",
		prometheus.CounterValue, func(s opstate.Stats) float64 { return float64(s.Misses) }},
	{"evictions_total", "Cache entries dropped to stay within Options.CacheBytes.",
		prometheus.CounterValue, func(s opstate.Stats) float64 { return float64(s.Evictions) }},
	{"invalidations_total", "Cache entries dropped because another connection changed them.",
		prometheus.CounterValue, func(s opstate.Stats) float64 { return float64(s.Invalidations) }},
	{"flushes_total", "Drops of the whole cache (a foreign change not pinned down, a failed check, the change stream back after an outage).",
		prometheus.CounterValue, func(s opstate.Stats) float64 { return float64(s.Flushes) }},
	{"writes_total", "Writes committed or failed (requests given to group commit).",
		prometheus.CounterValue, func(s opstate.Stats) float64 { return float64(s.Writes) }},
	{"commits_total", "Write transactions; opstate_writes_total / opstate_commits_total is the mean batch.",
		prometheus.CounterValue, func(s opstate.Stats) float64 { return float64(s.Commits) }},
	{"write_errors_total", "Writes that returned an error, of those counted in opstate_writes_total.",
		prometheus.CounterValue, func(s opstate.Stats) float64 { return float64(s.WriteErrors) }},
	{"expired_total", "Expired rows deleted by sweeps (DeleteExpired and the background sweeper).",
		prometheus.CounterValue, func(s opstate.Stats) float64 { return float64(s.Expired) }},
	{"watch_resets_total", "OpReset events sent to watchers.",
		prometheus.CounterValue, func(s opstate.Stats) float64 { return float64(s.WatchResets) }},
	{"stream_outages_total", "Failures of the change stream of a backend that pushes changes (PostgreSQL's LISTEN); always 0 on SQLite.",
		prometheus.CounterValue, func(s opstate.Stats) float64 { return float64(s.StreamOutages) }},
	{"cache_entries", "Entries cached now, negative ones included.",
		prometheus.GaugeValue, func(s opstate.Stats) float64 { return float64(s.Entries) }},
	{"cache_bytes", "Bytes the cache accounts against Options.CacheBytes now.",
		prometheus.GaugeValue, func(s opstate.Stats) float64 { return float64(s.Bytes) }},
}

// collector mirrors the Stats of one Store; descs[i] describes metrics[i].
type collector struct {
	stats func() opstate.Stats
	descs []*prometheus.Desc
}

// NewCollector returns a collector of store's [opstate.Store.Stats]: on
// each scrape it calls Stats once and reports every field, the counters
// as Prometheus counters and the cache's size as gauges, each with the
// constant label store="storeName". Give each Store in a process a name
// of its own: a second collector with a name already registered is
// refused by the registry (an [prometheus.AlreadyRegisteredError]), and
// one whose name is not valid UTF-8 fails to register. store must not be
// nil; it may be closed while registered, and then reports its final
// counts and an empty cache.
func NewCollector(store *opstate.Store, storeName string) prometheus.Collector {
	return newCollector(store.Stats, storeName)
}

// newCollector is NewCollector reading the counts from stats.
func newCollector(stats func() opstate.Stats, storeName string) *collector {
	labels := prometheus.Labels{"store": storeName}
	c := &collector{stats: stats, descs: make([]*prometheus.Desc, len(metrics))}
	for i, m := range metrics {
		c.descs[i] = prometheus.NewDesc("opstate_"+m.name, m.help, nil, labels)
	}
	return c
}

// Describe sends the description of every metric: implements
// [prometheus.Collector].
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect reads the Store's Stats once and sends every metric: implements
// [prometheus.Collector].
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	for i, m := range metrics {
		cm, err := prometheus.NewConstMetric(c.descs[i], m.typ, m.value(st))
		if err != nil {
			// Only an invalid Desc (a storeName that is not UTF-8), which
			// a registry refuses before it collects.
			cm = prometheus.NewInvalidMetric(c.descs[i], err)
		}
		ch <- cm
	}
}
