// Package ofprovider is an OpenFeature provider
// (github.com/open-feature/go-sdk) over an [opstate.Store]: code that
// reads its feature flags through the OpenFeature API reads them from one
// namespace of the Store, in which each key is a flag.
//
//	store, err := opstate.NewStore("state.db") // or pgstate.Open(ctx, dsn, opstate.Options{})
//	...
//	err = openfeature.SetProviderAndWait(ofprovider.New(store, "flags"))
//	client := openfeature.NewDefaultClient()
//	on, err := client.BooleanValue(ctx, "dark_mode", false, openfeature.EvaluationContext{})
//
// A flag is set like any key: store.Set("flags", "dark_mode", "true"), or
// from a shell, opstate set flags dark_mode true. An evaluation is one
// [opstate.Store.Lookup]: from the Store's memory, with no I/O, and,
// for every kind but Object, no allocation.
//
// # Values
//
// Every value is a string; each kind of evaluation reads it its own way:
//
//   - Boolean: strconv.ParseBool: true, false, 1, 0, t, f, T, F, TRUE,
//     FALSE, True, False. Not "on", "yes" or " true".
//   - String: the value as stored, byte for byte, "" included.
//   - Int: strconv.ParseInt(value, 10, 64): decimal, optional sign.
//   - Float: strconv.ParseFloat(value, 64): "1.5", "1e3", "-0", "NaN",
//     "Inf"; a value out of float64's range is not a float.
//   - Object: JSON, decoded by encoding/json into an any (objects are
//     map[string]any, arrays []any, numbers float64, null nil).
//
// Results follow the SDK's conventions, as its in-memory provider's do: a
// found flag is its value with reason STATIC and FlagMetadata
// {"namespace": namespace}; otherwise the evaluation returns the default,
// with reason ERROR and the error code FLAG_NOT_FOUND (the key is
// missing, expired, or empty), TYPE_MISMATCH (the value does not parse as
// the kind asked; PARSE_ERROR for Object's JSON) or GENERAL (the Store
// failed: closed, or its database unreachable). Results of failures carry
// the same FlagMetadata. The results' FlagMetadata is one map per
// Provider, which the SDK copies before handing it out; whoever calls the
// Provider's methods directly must not modify it.
//
// # Events and states
//
// [Provider.Init], which the SDK calls when the provider is set, starts
// following the namespace with [opstate.Store.Watch] in one goroutine;
// [Provider.Shutdown] stops it and waits for it: nothing the provider
// started outlives Shutdown. Init after Shutdown starts again. The SDK
// marks the provider READY once Init returns nil; from then on:
//
//   - A change of a key, by this process or any other writer the Store
//     sees (another Store, the opstate command, SQL), is a
//     PROVIDER_CONFIGURATION_CHANGED whose FlagChanges name it, sent once
//     the Store serves the change. Changes that arrive together are one
//     event naming each changed key once (up to 1024 keys an event).
//   - An OpReset of the namespace (DeleteNamespace, or events the Store
//     had to drop for a consumer that fell behind) is one
//     PROVIDER_CONFIGURATION_CHANGED naming every flag: the keys the
//     namespace held before, as far as the provider knows, and those it
//     holds now (the in-memory provider's convention, the union of the old
//     and the new flag set), sorted.
//   - On PostgreSQL (module pgstate), when the Store's change stream goes
//     down ([opstate.OpStale], [opstate.Store.Stale]), the provider sends
//     PROVIDER_STALE, and the SDK reports STALE: the Store may miss others'
//     changes until the stream is back. Evaluations go on meanwhile (they
//     read the server, or the cache with
//     opstate.Options.ServeStaleOnOutage). When it is back, the
//     provider sends PROVIDER_READY, then a PROVIDER_CONFIGURATION_CHANGED
//     naming every flag, as for an OpReset. A Store on SQLite is never
//     stale.
//   - When the Store is closed under the provider, the provider sends
//     PROVIDER_ERROR (error code GENERAL), the SDK reports ERROR, and
//     the goroutine ends. A closed Store does not reopen: evaluations
//     return their defaults with GENERAL ("opstate: store closed") until
//     the provider is replaced by one over an open Store, and Init fails
//     with an error matching [opstate.ErrClosed].
//
// The events wait for the SDK to take them, one at a time; while they
// wait, the Store coalesces the changes behind them per key (and into an
// OpReset past [opstate.MaxPendingEvents] keys), so a flood of writes
// costs the provider no more memory than the set of the namespace's keys,
// and no change goes unreported.
//
// # Targeting
//
// There is none: the evaluation context is ignored, and a flag's value is
// the same for every user, request and context. Percentage rollouts,
// rules and per-user values are out of scope; store the value each
// population gets under a key of its own, or use a provider made for
// targeting. The ctx of an evaluation is ignored too: a Lookup served from
// memory has nothing to cancel.
//
// # Caveats
//
//   - A Provider is bound to one namespace. Two namespaces are two
//     Providers, set for two domains.
//   - If the Store's change stream is already down when Init runs, the
//     provider sends PROVIDER_STALE right after; the SDK's own READY for
//     Init is applied when Init returns, and should it be applied after
//     the STALE (the SDK gives no way to wait for it), the SDK reports
//     READY until the stream is back.
//   - An OpReset during an outage (the Store dropped the events waiting
//     for a provider that fell more than opstate.MaxPendingEvents keys
//     behind) is followed by another OpStale; the provider then sends
//     PROVIDER_READY and PROVIDER_STALE again, READY for a moment.
//   - Events reach handlers as the SDK delivers them: each handler call
//     in a goroutine of its own, so handlers of two events may run in
//     either order.
package ofprovider
