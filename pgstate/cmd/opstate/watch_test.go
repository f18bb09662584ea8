package main

import (
	"context"
	"syscall"
	"testing"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/cli"
	"github.com/d8da9184/opstate/internal/cli/clitest"
	"github.com/jackc/pgx/v5"
)

// TestWatch runs opstate watch on a PostgreSQL database named by -db and
// by OPSTATE_DB, as a process of its own, while a Store, another run of
// the command and plain SQL (as psql would send it) change the namespace:
// it prints one line per change, in text and in -json form, nothing for
// another namespace, and exits 0 with nothing on standard error on SIGINT
// and on SIGTERM. Each change waits for its line before the next is made.
func TestWatch(t *testing.T) {
	for _, tt := range []struct {
		how  how
		json bool
		sig  syscall.Signal
	}{
		{hows[0], false, syscall.SIGINT},
		{hows[1], false, syscall.SIGTERM},
		{hows[0], true, syscall.SIGTERM},
		{hows[1], true, syscall.SIGINT},
	} {
		name := tt.how.name + "/text"
		if tt.json {
			name = tt.how.name + "/json"
		}
		t.Run(name, func(t *testing.T) {
			db := schemaURL(t)
			s := mustOpen(t, db)
			verb := []string{"watch", "flags"}
			if tt.json {
				verb = []string{"watch", "-json", "flags"}
			}
			args, env := tt.how.args(db, verb...)
			cmd := clitest.Command(args...)
			if env != "" {
				cmd.Env = append(cmd.Env, cli.DBEnv+"="+env)
			}
			p := clitest.Start(t, cmd)
			p.Ready(t, s, "flags", tt.json)

			sql := func(q string, args ...any) func() {
				return func() {
					ctx := context.Background()
					conn, err := pgx.Connect(ctx, db)
					if err != nil {
						t.Fatal(err)
					}
					defer conn.Close(ctx)
					if _, err := conn.Exec(ctx, q, args...); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
			}
			for _, st := range []struct {
				do             func()
				text, jsonLine string // "" for no line
			}{
				{func() { mustSet(t, s, "other", "dark_mode", "off") }, "", ""},
				{func() { mustSet(t, s, "flags", "dark_mode", "on") },
					"set\tdark_mode\ton", `{"namespace":"flags","key":"dark_mode","op":"set","value":"on"}`},
				{func() { tt.how.mustRun(t, db, "set", "flags", "beta", "two <words>\n") },
					`set	beta	"two <words>\n"`, `{"namespace":"flags","key":"beta","op":"set","value":"two <words>\n"}`},
				{sql(`UPDATE operational_state SET value = 'psql' WHERE namespace = 'flags' AND key = 'beta'`),
					"set\tbeta\tpsql", `{"namespace":"flags","key":"beta","op":"set","value":"psql"}`},
				{func() { tt.how.mustRun(t, db, "del", "flags", "dark_mode") },
					"delete\tdark_mode", `{"namespace":"flags","key":"dark_mode","op":"delete"}`},
				{sql(`DELETE FROM operational_state WHERE namespace = 'flags' AND key = 'beta'`),
					"delete\tbeta", `{"namespace":"flags","key":"beta","op":"delete"}`},
			} {
				st.do()
				p.ExpectLine(t, tt.json, st.text, st.jsonLine)
			}
			p.Stop(t, tt.sig)
		})
	}
}

func mustSet(t *testing.T, s *opstate.Store, ns, key, value string) {
	t.Helper()
	if err := s.Set(ns, key, value); err != nil {
		t.Fatalf("Set(%q, %q, %q) error: %v", ns, key, value, err)
	}
}
