package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/serve"
)

// defaultAddr is where serve listens when -addr is not given.
const defaultAddr = "127.0.0.1:8047"

// serveConfig is the flags of serve, and what prepare makes of them.
type serveConfig struct {
	addr, flags, tokensPath string
	cors                    []string
	maxValue                int64
	ui                      bool

	tokens   *serve.Tokens // read from tokensPath by prepare
	listener net.Listener  // opened by prepare
}

var serveVerb = &verb{
	name:  "serve",
	flags: "[-addr HOST:PORT] [-flags NAMESPACE] [-tokens FILE] [-cors ORIGIN]... [-max-value BYTES] [-ui=false]",
	help: "serve the database over HTTP until SIGINT or SIGTERM (exit 0): OFREP for OpenFeature\n" +
		"clients, the flags being the keys of NAMESPACE (default flags), and a key-value API with\n" +
		"event streams (see docs/serve.md); print \"serving http://ADDR\" once listening.\n" +
		"-addr defaults to " + defaultAddr + "; without -tokens, only a loopback address is taken\n" +
		"and every request is admitted; with it, each needs a token of FILE (lines NAME SCOPE\n" +
		"sha256:HEX, mode 0600; made by opstate token), and SIGHUP reloads FILE.\n" +
		"-cors ORIGIN (repeatable) lets browser pages of ORIGIN call it. -max-value bounds a\n" +
		"request body (default 1048576). The admin page is at / (log in with a token);\n" +
		"-ui=false leaves it out. Creates the database if missing",
	creates: true,
	sweeps:  true,
	define: func(fs *flag.FlagSet, inv *invocation) {
		c := &inv.serve
		fs.StringVar(&c.addr, "addr", defaultAddr, "listen on `HOST:PORT`")
		fs.StringVar(&c.flags, "flags", serve.DefaultFlagsNamespace, "the `NAMESPACE` of the OFREP flags")
		fs.StringVar(&c.tokensPath, "tokens", "", "admit only the tokens of `FILE`")
		fs.Func("cors", "let browser pages of `ORIGIN` call the server (repeatable)", func(o string) error {
			if err := serve.CheckOrigin(o); err != nil {
				return errors.New(strings.TrimPrefix(err.Error(), "serve: invalid option: "))
			}
			c.cors = append(c.cors, o)
			return nil
		})
		fs.Int64Var(&c.maxValue, "max-value", serve.DefaultMaxValueBytes, "bound a request body to `BYTES`")
		fs.BoolVar(&c.ui, "ui", true, "serve the admin page at /")
	},
	check: func(fs *flag.FlagSet, inv *invocation) error {
		c := &inv.serve
		if c.flags == "" {
			return errors.New("empty -flags namespace")
		}
		if c.maxValue <= 0 {
			return fmt.Errorf("-max-value %d is not a positive number of bytes", c.maxValue)
		}
		if isSet(fs, "tokens") && c.tokensPath == "" {
			return errors.New("empty -tokens path")
		}
		host, _, err := net.SplitHostPort(c.addr)
		if err != nil {
			return fmt.Errorf("-addr %q is not HOST:PORT: %v", c.addr, err)
		}
		if c.tokensPath == "" && !isLoopback(host) {
			return fmt.Errorf("-addr %s is not a loopback address; without -tokens, serve admits every request, "+
				"so it listens only on 127.0.0.1, ::1 or localhost: give -tokens FILE (see opstate token) to listen there", c.addr)
		}
		return nil
	},
	prepare: prepareServe,
	exec:    execServe,
}

// isLoopback reports whether host, from -addr, names a loopback address
// alone: "localhost" or a loopback IP. An empty host (every interface) and
// any other name are not.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// prepareServe reads the token file and listens, before the database is
// opened: a bad file or a busy port then changes nothing. A token file
// that is one of the database's files is refused unopened
// (serve.LoadTokens, dbFiles).
func prepareServe(inv *invocation) (func(), error) {
	c := &inv.serve
	if c.tokensPath != "" {
		toks, err := serve.LoadTokens(c.tokensPath, dbFiles(inv.db)...)
		var own *serve.OwnFileError
		if errors.As(err, &own) {
			return nil, fmt.Errorf("opstate: serve: -tokens %w", err)
		}
		if err != nil {
			return nil, fmt.Errorf("opstate: serve: %w", err)
		}
		c.tokens = toks
	}
	l, err := net.Listen("tcp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("opstate: serve: %w", err)
	}
	c.listener = l
	return func() { l.Close() }, nil
}

// execServe serves s until SIGINT or SIGTERM, reloading the token file on
// SIGHUP.
func execServe(s *opstate.Store, inv *invocation, stdout io.Writer) (int, error) {
	c := &inv.serve
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A closed standard output must not kill the server (see execWatch).
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	defer signal.Stop(pipe)

	srv, err := serve.New(s, serve.Options{
		FlagsNamespace: c.flags,
		Tokens:         c.tokens,
		CORSOrigins:    c.cors,
		MaxValueBytes:  c.maxValue,
		UI:             c.ui,
		Logger:         slog.New(slog.NewTextHandler(inv.stderr, nil)),
	})
	if err != nil {
		return exitFail, fmt.Errorf("opstate: serve: %w", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloaded := make(chan struct{})
	go func() {
		defer close(reloaded)
		for {
			select {
			case <-hup:
				reload(srv, c.tokensPath, inv.db, stdout, inv.stderr)
			case <-ctx.Done():
				return
			}
		}
	}()
	fmt.Fprintf(stdout, "serving http://%s\n", c.listener.Addr())
	err = srv.Serve(ctx, c.listener)
	stop()
	<-reloaded
	if err != nil {
		return exitFail, fmt.Errorf("opstate: serve: %w", err)
	}
	return exitOK, nil
}

// reload reads the token file at path again, on SIGHUP, and gives its
// tokens to srv; a file it refuses leaves the tokens as they were. It
// says which on stdout or stderr. It refuses unopened a path that has
// become one of the files of the database db (serve.LoadTokens), which
// the Store holds open: closing the file would drop SQLite's locks.
func reload(srv *serve.Server, path, db string, stdout, stderr io.Writer) {
	if path == "" {
		fmt.Fprintln(stderr, "opstate: serve: SIGHUP: no -tokens file to reload")
		return
	}
	toks, err := serve.LoadTokens(path, dbFiles(db)...)
	if err == nil {
		err = srv.SetTokens(toks)
	}
	if err != nil {
		fmt.Fprintf(stderr, "opstate: serve: reload %s: %v; the tokens loaded before stay\n", path, err)
		return
	}
	fmt.Fprintf(stdout, "reloaded %s: %d tokens\n", path, toks.Len())
}

var tokenVerb = &verb{
	name:   "token",
	params: []string{"NAME", "SCOPE"},
	help: "print a new random secret (256 bits) on standard output, and on standard error the\n" +
		"line that admits it with SCOPE (read or write) to serve -tokens FILE:\n" +
		"NAME SCOPE sha256:HEX. opstate token ci read 2>>tokens appends it. Opens no database",
	check: func(_ *flag.FlagSet, inv *invocation) error {
		_, err := serve.ParseScope(inv.args[1])
		if err != nil {
			return errors.New(strings.TrimPrefix(err.Error(), "serve: bad token file: "))
		}
		return nil
	},
	run: func(inv *invocation, stdout, stderr io.Writer) (int, error) {
		scope, _ := serve.ParseScope(inv.args[1])
		secret, line, err := serve.NewToken(inv.args[0], scope)
		if err != nil {
			return exitFail, fmt.Errorf("opstate: token: %w", err)
		}
		if _, err := fmt.Fprintln(stdout, secret); err != nil {
			return exitFail, fmt.Errorf("opstate: write output: %w", err)
		}
		if _, err := fmt.Fprintln(stderr, line); err != nil {
			return exitFail, fmt.Errorf("opstate: write output: %w", err)
		}
		return exitOK, nil
	},
}
