package serve

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"time"
)

// Defaults of [Options]: what a zero field means.
const (
	DefaultFlagsNamespace    = "flags"
	DefaultMaxValueBytes     = 1 << 20 // 1 MiB
	DefaultMaxConns          = 16384
	DefaultMaxStreams        = 10000
	DefaultHeartbeat         = 15 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxSessions       = 1024
)

// ErrInvalidOption is returned by [New] for an [Options] value it cannot
// honour.
var ErrInvalidOption = errors.New("serve: invalid option")

// Options configures a [Server]. The zero value of each field means the
// default named in its comment; a value the Server cannot honour (a
// negative size or duration, a CORS origin that is not one) makes [New]
// fail with [ErrInvalidOption].
type Options struct {
	// FlagsNamespace is the namespace whose keys OFREP serves as flags.
	// Default "flags".
	FlagsNamespace string

	// Tokens, when not nil, are the only credentials admitted: every
	// request but a CORS preflight must present one of their secrets
	// (Authorization: Bearer SECRET, or X-API-Key: SECRET), or is
	// answered 401; a read token writing is answered 403. Nil admits
	// everyone: the caller (opstate serve) then listens on a loopback
	// address only. [Server.SetTokens] replaces them while serving.
	Tokens *Tokens

	// CORSOrigins are the origins ("https://app.example.com", scheme,
	// host and port only) whose browser pages may call the server: their
	// requests get CORS headers, and their preflights an answer. Requests
	// from other origins, and every request when it is empty (the
	// default), get none.
	CORSOrigins []string

	// MaxValueBytes bounds a request body: a PUT's value, an OFREP
	// evaluation request. A longer body is answered 413 and stored
	// nowhere. Default DefaultMaxValueBytes (1 MiB).
	MaxValueBytes int64

	// MaxConns bounds the connections [Server.Serve] holds open at once,
	// idle keep-alive connections and event streams included: past it, a
	// new connection is answered 503 and closed. Default DefaultMaxConns:
	// room for MaxStreams streams and 6,384 other connections. Each
	// connection takes a file descriptor, so the process's limit of open
	// files must exceed MaxConns, and some tens of KB (docs/performance.md
	// in the repository has the figures).
	MaxConns int

	// MaxStreams bounds the event streams (GET .../events and the OFREP
	// event stream) open at once; past it, a new one is answered 503.
	// The streams of a namespace share one Store.Watch; a stream holds
	// some tens of KB, a little more than an idle connection, and the
	// sends of all the streams are paced to about half a processor (a
	// Set's cost stays within about twice its cost with no stream; the
	// figures are in docs/performance.md). Default DefaultMaxStreams.
	MaxStreams int

	// Heartbeat is how often an event stream with nothing to send sends a
	// comment line, so that proxies and clients see it alive. Default
	// DefaultHeartbeat (15 s).
	Heartbeat time.Duration

	// ReadHeaderTimeout bounds the reading of a request's headers, and
	// ReadTimeout of the whole request, body included: a client slower
	// than that is disconnected. Defaults DefaultReadHeaderTimeout and
	// DefaultReadTimeout. An event stream is exempt from ReadTimeout once
	// it has begun.
	ReadHeaderTimeout, ReadTimeout time.Duration

	// WriteTimeout bounds the writing of a response, and, on an event
	// stream, of each event or heartbeat: a client that reads slower is
	// disconnected. Default DefaultWriteTimeout.
	WriteTimeout time.Duration

	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request. Default DefaultIdleTimeout.
	IdleTimeout time.Duration

	// ShutdownTimeout bounds how long [Server.Serve], its context ended,
	// waits for requests in flight before closing their connections.
	// Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration

	// MaxHeaderBytes bounds a request's headers; larger ones are answered
	// 431. Default DefaultMaxHeaderBytes (64 KiB).
	MaxHeaderBytes int

	// UI serves the admin page at / (see the package's Admin page
	// section): a login form when there are Tokens, then the namespaces,
	// their keys, live updates and history. Off by default; the opstate
	// command's serve turns it on unless -ui=false.
	UI bool

	// MaxSessions bounds the admin page's logins held at once; a login
	// past it ends the session least recently used. Default
	// DefaultMaxSessions.
	MaxSessions int

	// Logger receives what the server cannot tell a client: a failed
	// listener, a panic in a handler. Default: slog.Default().
	Logger *slog.Logger
}

// withDefaults returns o with its zero fields set to their defaults, or
// an error for a field it cannot honour.
func (o Options) withDefaults() (Options, error) {
	if o.FlagsNamespace == "" {
		o.FlagsNamespace = DefaultFlagsNamespace
	}
	o.CORSOrigins = slices.Clone(o.CORSOrigins)
	for _, origin := range o.CORSOrigins {
		if err := checkOrigin(origin); err != nil {
			return Options{}, err
		}
	}
	for _, f := range []struct {
		name string
		v    *int64
		def  int64
	}{
		{"MaxValueBytes", &o.MaxValueBytes, DefaultMaxValueBytes},
	} {
		if *f.v < 0 {
			return Options{}, fmt.Errorf("%w: %s %d is negative", ErrInvalidOption, f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxConns", &o.MaxConns, DefaultMaxConns},
		{"MaxStreams", &o.MaxStreams, DefaultMaxStreams},
		{"MaxHeaderBytes", &o.MaxHeaderBytes, DefaultMaxHeaderBytes},
		{"MaxSessions", &o.MaxSessions, DefaultMaxSessions},
	} {
		if *f.v < 0 {
			return Options{}, fmt.Errorf("%w: %s %d is negative", ErrInvalidOption, f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Heartbeat", &o.Heartbeat, DefaultHeartbeat},
		{"ReadHeaderTimeout", &o.ReadHeaderTimeout, DefaultReadHeaderTimeout},
		{"ReadTimeout", &o.ReadTimeout, DefaultReadTimeout},
		{"WriteTimeout", &o.WriteTimeout, DefaultWriteTimeout},
		{"IdleTimeout", &o.IdleTimeout, DefaultIdleTimeout},
		{"ShutdownTimeout", &o.ShutdownTimeout, DefaultShutdownTimeout},
	} {
		if *f.v < 0 {
			return Options{}, fmt.Errorf("%w: %s %v is negative", ErrInvalidOption, f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if o.MaxStreams > o.MaxConns {
		return Options{}, fmt.Errorf("%w: MaxStreams %d is more than MaxConns %d, which every stream counts in",
			ErrInvalidOption, o.MaxStreams, o.MaxConns)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// checkOrigin checks a CORS origin: an http or https URL of a host and
// maybe a port, nothing more, as a browser sends it in Origin.
func checkOrigin(origin string) error {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" ||
		u.String() != origin {
		return fmt.Errorf("%w: CORS origin %q is not an origin such as https://app.example.com "+
			"(scheme, host and port only, no path, no trailing slash; * is not taken: list the origins)", ErrInvalidOption, origin)
	}
	return nil
}

// CheckOrigin returns an error matching [ErrInvalidOption] unless origin
// is one that Options.CORSOrigins takes.
func CheckOrigin(origin string) error { return checkOrigin(origin) }
