// Package opstateprom exports the counters of an [opstate.Store] to
// Prometheus. It has one function, [NewCollector], which returns a
// [prometheus.Collector] that mirrors [opstate.Store.Stats] on each
// scrape: it calls Stats once and reports every field of [opstate.Stats]
// as a constant metric, as client_golang's collectors.NewDBStatsCollector
// does for database/sql. It lives in a module of its own so that the
// opstate module keeps its three dependencies.
//
// # Registering
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(opstateprom.NewCollector(s, "state"))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// (or prometheus.MustRegister, for the default registry that promhttp.Handler
// serves). Every metric carries the constant label store, the storeName
// given to NewCollector, so that the Stores of one process register side
// by side in one registry, one name each; registering a second collector
// under a name already registered fails with
// [prometheus.AlreadyRegisteredError].
//
// # Metrics
//
// Counters, monotonic since the Store was opened:
//
//	opstate_hits_total            Gets and Lookups answered from the cache, negative entries included
//	opstate_misses_total          Gets and Lookups that read storage (SQLite or PostgreSQL)
//	opstate_evictions_total       cache entries dropped to stay within Options.CacheBytes
//	opstate_invalidations_total   cache entries dropped because another connection changed them
//	opstate_flushes_total         drops of the whole cache
//	opstate_writes_total          writes committed or failed
//	opstate_commits_total         write transactions (writes_total / commits_total is the mean batch)
//	opstate_write_errors_total    writes that returned an error, of those in writes_total
//	opstate_expired_total         expired rows deleted by sweeps
//	opstate_watch_resets_total    OpReset events sent to watchers
//	opstate_stream_outages_total  failures of PostgreSQL's change stream
//
// Gauges, the cache now:
//
//	opstate_cache_entries         entries cached, negative ones included
//	opstate_cache_bytes           bytes the cache accounts against Options.CacheBytes
//
// Each metric says what its field of [opstate.Stats] says, and a scrape is
// as exact as Stats: the fields are read one by one, so a scrape taken
// while operations run may count an operation in one metric and not yet
// in a related one.
//
// # Closed Stores
//
// Stats works after [opstate.Store.Close], so a collector whose Store was
// closed still scrapes: the counters stay at their final counts and the
// cache gauges read 0. Unregister the collector to stop exporting them.
package opstateprom
